"""GenerativeEvaluator's executor: scores the candidate, and the last blessed model beside it on
the same images with the same seeds, writes metrics, sample and reconstruction grids, and the
blessing with its rule, its reasons and the record of the best blessed metrics
(nvae_tfx/evaluation/blessing.py)."""

import dataclasses
import json
import math
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from tfx import types
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as tfx_evaluator
from tfx.types import artifact_utils
from tfx.utils import io_utils

from nvae_tfx import datasets, images, strict_json
from nvae_tfx.data import records, transformed
from nvae_tfx.evaluation import blessing as blessing_rule
from nvae_tfx.evaluation import feature_networks, generative_metrics
from nvae_tfx.options import CODE_FINGERPRINT, EvaluationOptions
from nvae_tfx.tracing import graph_function
from nvae_tfx.training import export

METRICS_FILE = 'metrics.json'
SAMPLES_PNG = 'samples.png'
RECONSTRUCTIONS_PNG = 'reconstructions.png'
TRAINING_SUMMARY = 'training_summary.json'  # in the Trainer's model_run
# On the blessing: why not blessed (empty when blessed); the rule applied; where a baseline was
# resolved but not compared, why; the best blessed metrics of the protocol, this model's included.
REASONS_PROPERTY = 'reasons'
RULE_PROPERTY = 'rule'
BASELINE_SKIPPED_PROPERTY = 'baseline_skipped'
BEST_PROPERTY = 'best_metrics'
REFERENCE_BATCH = 250  # real images per feature-network call


def samples_png_at(temperature: float) -> str:
    """The grid of samples at a temperature other than the protocol's: samples_t0.6.png."""
    return f'samples_t{temperature:g}.png'


def load_nvae(model_artifact: types.Artifact):
    import model_code.nvae  # noqa: F401  (registers the NVAE classes for deserialisation)

    return keras.saving.load_model(export.keras_model_path(model_artifact.uri))


def set_metric_properties(artifact: types.Artifact, metrics: dict) -> None:
    """Floats as double properties; text and non-finite floats as strings ('nan', 'inf'):
    MLMD's SQLite backend rejects non-finite doubles."""
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and math.isfinite(value):
            artifact.set_float_custom_property(key, float(value))
        else:
            artifact.set_string_custom_property(key, str(value))


def unscorable(config, image_shape: tuple, candidate_config) -> str:
    """Why a model with this config cannot be scored on these images beside the candidate
    (another dataset, image size or bit depth), '' if it can."""
    expected = (config.image_size, config.image_size, config.in_channels)
    if config.dataset != candidate_config.dataset:
        return f'it models {config.dataset}, the candidate {candidate_config.dataset}'
    if expected != tuple(image_shape):
        return f'it takes {expected} images, the data holds {tuple(image_shape)}'
    if config.num_x_bits != candidate_config.num_x_bits:
        return (
            f'it scores {config.num_x_bits}-bit pixels, the candidate {candidate_config.num_x_bits}'
        )
    return ''


@dataclasses.dataclass(frozen=True)
class BaselineScore:
    """The last blessed model scored beside the candidate, or why it was not."""

    metrics: dict = dataclasses.field(default_factory=dict)
    skipped: str = ''  # not compared, legitimately (another dataset, image size, bit depth)
    refused: str = ''  # should have been compared but could not be: not blessed
    readjusted: str = ''  # its BatchNorm readjusted as the candidate's was, and why


def training_problems(model_run_uri: str) -> list[str]:
    """Reasons in the Trainer's summary not to bless: training that ended on non-finite losses,
    or no summary at all."""
    path = os.path.join(model_run_uri, TRAINING_SUMMARY)
    if not tf.io.gfile.exists(path):
        return [f'{path} is missing: training did not record how it ended']
    summary = json.loads(io_utils.read_string_file(path))
    bad = sorted(
        k
        for k, v in summary.get('final', {}).items()
        if isinstance(v, str) or not math.isfinite(v)  # strict JSON writes NaN as 'nan'
    )
    return [f'training ended with non-finite {", ".join(bad)} ({path})'] if bad else []


def read_best(baseline_blessing, protocol_key: str) -> tuple[blessing_rule.Best | None, str]:
    """(the best blessed metrics of this protocol, recorded on the last blessing; '') or
    (None, why there is no record to compare with)."""
    if baseline_blessing is None:
        return None, ''
    if not baseline_blessing.has_custom_property(BEST_PROPERTY):
        return None, 'the last blessing records no best metrics'
    best = blessing_rule.Best.from_json(baseline_blessing.get_string_custom_property(BEST_PROPERTY))
    if best.protocol_key != protocol_key:
        return None, (
            'the best metrics on record were measured under another protocol (settings, '
            'images, feature networks or evaluation code); the record starts again'
        )
    return best, ''


@dataclasses.dataclass(frozen=True)
class Scoring:
    """What every model of one evaluation is scored on and how: the images the likelihoods
    score, the real images' features per feature network, the options (K, samples, seed) and
    the record of the protocol."""

    options: EvaluationOptions
    nll_images: np.ndarray
    networks: list
    reference: dict
    measured_with: dict

    @classmethod
    def prepare(cls, options, examples_uri, transform_graph_uri, networks, dataset) -> 'Scoring':
        data = transformed.read_transformed_split(
            examples_uri, transform_graph_uri, options.eval_split, limit=options.eval_examples
        )
        scored = np.asarray(transformed.to_model_images(data[records.IMAGE]))
        if dataset == 'mnist':
            scored = datasets.fixed_binarize(scored, options.eval_seed)
        reference = {}
        if networks:
            batches = transformed.transformed_batches(
                examples_uri,
                transform_graph_uri,
                options.fid_reference_split,
                limit=options.fid_reference_examples,
                batch_size=REFERENCE_BATCH,
            )
            reference = generative_metrics.features_by_network(
                networks,
                (np.asarray(transformed.to_model_images(b[records.IMAGE])) for b in batches),
            )
        measured_with = generative_metrics.protocol(
            options, dataset, len(scored), reference, networks
        )
        return cls(options, scored, networks, reference, measured_with)

    def score(self, nvae) -> tuple[dict, dict]:
        """(metrics with the protocol's record, {temperature: samples for its grid}) of one
        model."""
        keras.utils.set_random_seed(self.options.eval_seed)
        metrics, grid = generative_metrics.evaluate(
            nvae, self.nll_images, self.reference, self.networks, self.options
        )
        return {**metrics, **self.measured_with}, grid


class Executor(tfx_evaluator.Executor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        options = EvaluationOptions.from_evaluator_parameters(exec_properties)
        model = artifact_utils.get_single_instance(input_dict['model'])
        baseline = (input_dict.get('baseline_model') or [None])[0]
        baseline_blessing = (input_dict.get('baseline_blessing') or [None])[0]
        model_run = (input_dict.get('model_run') or [None])[0]
        evaluation = artifact_utils.get_single_instance(output_dict['evaluation'])
        blessing = artifact_utils.get_single_instance(output_dict['blessing'])
        examples_uri = artifact_utils.get_single_uri(input_dict['examples'])
        transform_graph_uri = artifact_utils.get_single_uri(input_dict['transform_graph'])

        candidate = load_nvae(model)
        scoring = Scoring.prepare(
            options,
            examples_uri,
            transform_graph_uri,
            self._feature_networks(input_dict, options),
            candidate.config.dataset,
        )
        nll_images, networks, score = scoring.nll_images, scoring.networks, scoring.score
        protocol_key = blessing_rule.protocol_key(
            scoring.measured_with,
            nll_images,
            {name: features.features for name, features in scoring.reference.items()},
            exec_properties.get(CODE_FINGERPRINT, ''),
        )

        metrics, grids = score(candidate)
        compared = BaselineScore()
        if baseline is not None and baseline.id != model.id:
            compared = self._score_baseline(
                baseline, score, nll_images.shape[1:], candidate, options
            )
        elif baseline is not None:
            logging.info('Baseline is the candidate itself (Trainer cache hit): no comparison.')
        best, best_note = read_best(baseline_blessing, protocol_key)
        primary_fid = next((f'fid_{n.name}' for n in networks), '')
        rule = blessing_rule.Rule(
            options.max_nll, options.max_fid, options.nll_tolerance, options.fid_tolerance
        )
        reasons = (
            (training_problems(model_run.uri) if model_run is not None else [])
            + ([compared.refused] if compared.refused else [])
            + blessing_rule.decide(
                metrics,
                rule,
                primary_fid,
                compared.metrics,
                best,
                baseline.id if baseline is not None else None,
            )
        )
        if not reasons:
            best = (best or blessing_rule.Best(protocol_key, {})).updated(
                metrics, model.id, blessing_rule.compared_metrics(primary_fid)
            )

        report = {
            'metrics': metrics,
            'baseline_metrics': compared.metrics,
            'baseline_skipped': compared.skipped,
            'baseline_readjusted': compared.readjusted,
            'best_metrics': dataclasses.asdict(best) if best else None,
            'best_metrics_note': best_note,
            'rule': rule.text(primary_fid),
            'blessed': not reasons,
            'reasons': reasons,
        }
        self._write_evaluation(evaluation, candidate, report, grids, nll_images, options)
        self._write_blessing(blessing, model, baseline, report, best)
        logging.info(
            'Evaluation: %s; %s',
            strict_json.dumps(metrics),
            'BLESSED' if not reasons else 'NOT BLESSED: ' + '; '.join(reasons),
        )

    @staticmethod
    def _score_baseline(
        baseline, score, image_shape, candidate, options: EvaluationOptions
    ) -> BaselineScore:
        """The last blessed model scored as the candidate is. One that should be compared but
        cannot be read (a storage error, a damaged file, a format this code cannot load) refuses
        the blessing, unless options.bless_without_baseline; one that models other data is
        skipped. Its BatchNorm is readjusted as the candidate's was where they differ, so that
        both samples are drawn under one protocol."""
        where = f'the last blessed model {baseline.id} ({baseline.uri})'
        try:
            nvae = load_nvae(baseline)
        except Exception as e:  # noqa: BLE001  (storage and Keras raise many kinds)
            why = f'{where} could not be read ({type(e).__name__}: {e})'
            logging.warning('%s', why)
            if options.bless_without_baseline:
                return BaselineScore(skipped=f'{why}; judged without it (bless_without_baseline)')
            return BaselineScore(
                refused=f'{why}: not blessed without that comparison (bless_without_baseline '
                'allows it)'
            )
        why = unscorable(nvae.config, image_shape, candidate.config)
        if why:
            skipped = f'{where} not compared: {why}'
            logging.warning('%s', skipped)
            return BaselineScore(skipped=skipped)
        ours, theirs = candidate.sampling_settings(), nvae.sampling_settings()
        readjusted = ''
        if theirs != ours:
            nvae.reseed(options.eval_seed)
            nvae.readjust_bn(
                ours['passes'], ours['batch'], ours['temperature'], compile_pass=graph_function
            )
            readjusted = (
                f'{where} sampled after BatchNorm readjustment as the candidate ({ours}); '
                f'its own: {theirs or "none"}'
            )
            logging.info('%s', readjusted)
        return BaselineScore(metrics=score(nvae)[0], readjusted=readjusted)

    @staticmethod
    def _feature_networks(input_dict, options: EvaluationOptions) -> list:
        networks = [
            feature_networks.load_digit_classifier(a.uri)
            for a in input_dict.get('feature_network') or []
        ]
        if options.inception_weights:
            networks.append(feature_networks.load_inception_v3(options.inception_weights))
        return networks

    @staticmethod
    def _write_evaluation(evaluation, candidate, report, grids, nll_images, options):
        io_utils.write_string_file(
            os.path.join(evaluation.uri, METRICS_FILE), strict_json.dumps(report, indent=1)
        )
        scale = 2 if candidate.config.image_size <= 32 else 1
        for temperature, grid in grids.items():
            name = (
                SAMPLES_PNG
                if temperature == options.sample_temperature
                else samples_png_at(temperature)
            )
            io_utils.write_bytes_file(
                os.path.join(evaluation.uri, name),
                images.png_bytes(images.grid(grid, columns=10), scale),
            )
        originals = nll_images[:50]
        recons = keras.ops.convert_to_numpy(candidate.reconstruct(originals))
        pairs = np.stack([originals, recons], axis=1).reshape((-1,) + recons.shape[1:])
        io_utils.write_bytes_file(
            os.path.join(evaluation.uri, RECONSTRUCTIONS_PNG),
            images.png_bytes(images.grid(pairs, columns=10), scale),
        )
        set_metric_properties(evaluation, report['metrics'])

    @staticmethod
    def _write_blessing(blessing, model, baseline, report, best):
        """The properties Pusher (blessed) and LatestBlessedModelStrategy (current_model_id) read,
        and the marker file, as TFX's own Evaluator writes them; the rule, the reasons and the
        best blessed metrics beside them."""
        blessed = report['blessed']
        blessing.set_int_custom_property(
            constants.ARTIFACT_PROPERTY_BLESSED_KEY,
            constants.BLESSED_VALUE if blessed else constants.NOT_BLESSED_VALUE,
        )
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
        blessing.set_string_custom_property(
            constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri
        )
        if baseline is not None:
            blessing.set_int_custom_property(
                constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline.id
            )
            blessing.set_string_custom_property(
                constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline.uri
            )
        if report['baseline_skipped']:
            blessing.set_string_custom_property(
                BASELINE_SKIPPED_PROPERTY, report['baseline_skipped']
            )
        if best is not None:
            blessing.set_string_custom_property(BEST_PROPERTY, best.to_json())
        blessing.set_string_custom_property(RULE_PROPERTY, report['rule'])
        blessing.set_string_custom_property(REASONS_PROPERTY, '; '.join(report['reasons']))
        marker = constants.BLESSED_FILE_NAME if blessed else constants.NOT_BLESSED_FILE_NAME
        io_utils.write_string_file(os.path.join(blessing.uri, marker), '')
