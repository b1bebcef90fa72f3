"""GenerativeEvaluator's executor: evaluates candidate (and baseline) on identical data, writes
metrics, sample and reconstruction grids, and the blessing."""

import json
import math
import os
from typing import Any

import keras
import numpy as np
from absl import logging
from tfx import types
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as tfx_evaluator
from tfx.types import artifact_utils
from tfx.utils import io_utils

from nvae_tfx import datasets, images
from nvae_tfx.data import records, transformed
from nvae_tfx.evaluation import feature_networks, generative_metrics
from nvae_tfx.options import EvaluationOptions
from nvae_tfx.training import export

METRICS_FILE = 'metrics.json'
SAMPLES_PNG = 'samples.png'
RECONSTRUCTIONS_PNG = 'reconstructions.png'
REASONS_PROPERTY = 'reasons'  # on the blessing: why not blessed, empty when blessed
# On the blessing, where a baseline was resolved but not compared: why.
BASELINE_SKIPPED_PROPERTY = 'baseline_skipped'
REFERENCE_BATCH = 250  # real images per feature-network call


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


def strict_json(value):
    """value with every non-finite float as its name ('nan', 'inf', '-inf'): JSON has no such
    numbers, and strict parsers reject Python's NaN literals."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def blessing_decision(
    metrics: dict,
    baseline: dict,
    primary_fid: str,
    max_nll: float | None,
    max_fid: float | None,
    max_regression: float,
) -> list[str]:
    """Reasons not to bless; empty means blessed. A threshold of None is not checked; baseline:
    the last blessed model's metrics on the same data, {} when there is none to compare with;
    primary_fid: the FID that max_fid and the comparison use, '' when none was measured."""
    non_finite = generative_metrics.non_finite(metrics)
    if non_finite:
        return ['non-finite metrics: ' + ', '.join(non_finite)]
    reasons = []
    if max_nll is not None and metrics['nll_nats'] > max_nll:
        reasons.append(f'nll_nats {metrics["nll_nats"]:.3f} > threshold {max_nll}')
    if max_fid is not None and not primary_fid:
        reasons.append(f'max_fid {max_fid} is set but no feature network measured FID')
    elif max_fid is not None and metrics[primary_fid] > max_fid:
        reasons.append(f'{primary_fid} {metrics[primary_fid]:.3f} > threshold {max_fid}')
    for key in [k for k in ('nll_nats', primary_fid) if k and baseline]:
        reference = baseline.get(key, math.nan)
        # Every comparison with NaN is false: it must refuse, not let the candidate through.
        if not math.isfinite(reference):
            reasons.append(f'baseline {key} is {reference}: no comparison is possible')
            continue
        limit = reference + max_regression * abs(reference)
        if metrics[key] > limit:
            reasons.append(
                f'{key} {metrics[key]:.3f} worse than baseline {reference:.3f} '
                f'beyond tolerance {max_regression:.1%}'
            )
    return reasons


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
        evaluation = artifact_utils.get_single_instance(output_dict['evaluation'])
        blessing = artifact_utils.get_single_instance(output_dict['blessing'])
        examples_uri = artifact_utils.get_single_uri(input_dict['examples'])
        transform_graph_uri = artifact_utils.get_single_uri(input_dict['transform_graph'])

        data = transformed.read_transformed_split(
            examples_uri, transform_graph_uri, options.split, limit=options.num_eval_examples
        )
        real = np.asarray(transformed.to_model_images(data[records.IMAGE]))
        candidate = load_nvae(model)
        dataset = candidate.config.dataset
        nll_images = datasets.fixed_binarize(real, options.seed) if dataset == 'mnist' else real
        networks = self._feature_networks(input_dict, options)
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
            options, dataset, len(nll_images), reference, networks
        )

        def score(nvae):
            keras.utils.set_random_seed(options.seed)
            metrics, grid = generative_metrics.evaluate(
                nvae, nll_images, reference, networks, options
            )
            return {**metrics, **measured_with}, grid

        metrics, grid = score(candidate)
        baseline_metrics, baseline_skipped = {}, ''
        if baseline is not None and baseline.id != model.id:
            baseline_metrics, baseline_skipped = self._score_baseline(
                baseline, score, nll_images.shape[1:], candidate.config
            )
        elif baseline is not None:
            logging.info('Baseline is the candidate itself (Trainer cache hit): no comparison.')
        primary_fid = next((f'fid_{n.name}' for n in networks), '')
        reasons = blessing_decision(
            metrics,
            baseline_metrics,
            primary_fid,
            options.max_nll,
            options.max_fid,
            options.max_regression,
        )

        report = {
            'metrics': metrics,
            'baseline_metrics': baseline_metrics,
            'baseline_skipped': baseline_skipped,
            'blessed': not reasons,
            'reasons': reasons,
        }
        self._write_evaluation(evaluation, candidate, report, grid, nll_images)
        self._write_blessing(blessing, model, baseline, reasons, baseline_skipped)
        logging.info(
            'Evaluation: %s; %s',
            json.dumps(strict_json(metrics)),
            'BLESSED' if not reasons else 'NOT BLESSED: ' + '; '.join(reasons),
        )

    @staticmethod
    def _score_baseline(baseline, score, image_shape, candidate_config) -> tuple[dict, str]:
        """(metrics, '') of the last blessed model, or ({}, why it was skipped): a model this
        code cannot load (saved by an older version) or cannot score on this data is reported,
        not fatal; the candidate is then judged by the thresholds alone."""
        try:
            nvae = load_nvae(baseline)
        except Exception as e:  # noqa: BLE001  (Keras raises many kinds for an incompatible file)
            why = f'this code cannot load it ({type(e).__name__}: {e})'
        else:
            why = unscorable(nvae.config, image_shape, candidate_config)
            if not why and nvae.sampling_settings() is None:
                why = 'it has no sampling state (its BatchNorm was never readjusted for sampling)'
            if not why:
                return score(nvae)[0], ''
        skipped = f'baseline model {baseline.id} ({baseline.uri}) not compared: {why}'
        logging.warning('%s', skipped)
        return {}, skipped

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
    def _write_evaluation(evaluation, candidate, report, grid, nll_images):
        io_utils.write_string_file(
            os.path.join(evaluation.uri, METRICS_FILE),
            json.dumps(strict_json(report), indent=1, allow_nan=False),
        )
        scale = 2 if candidate.config.image_size <= 32 else 1
        io_utils.write_bytes_file(
            os.path.join(evaluation.uri, SAMPLES_PNG),
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
    def _write_blessing(blessing, model, baseline, reasons, baseline_skipped):
        """The properties Pusher (blessed) and LatestBlessedModelStrategy (current_model_id) read,
        and the marker file, as TFX's own Evaluator writes them; the reasons beside them."""
        blessed = not reasons
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
        if baseline_skipped:
            blessing.set_string_custom_property(BASELINE_SKIPPED_PROPERTY, baseline_skipped)
        blessing.set_string_custom_property(REASONS_PROPERTY, '; '.join(reasons))
        marker = constants.BLESSED_FILE_NAME if blessed else constants.NOT_BLESSED_FILE_NAME
        io_utils.write_string_file(os.path.join(blessing.uri, marker), '')
