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


def load_nvae(model_artifact: types.Artifact):
    import model_code.nvae  # noqa: F401  (registers the NVAE classes for deserialisation)

    return keras.saving.load_model(export.keras_model_path(model_artifact.uri))


def set_metric_properties(artifact: types.Artifact, metrics: dict) -> None:
    """Floats as double properties; non-finite ones as strings ('nan', 'inf'): MLMD's SQLite
    backend rejects non-finite doubles."""
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and math.isfinite(value):
            artifact.set_float_custom_property(key, float(value))
        else:
            artifact.set_string_custom_property(key, str(value))


def blessing_decision(
    metrics: dict,
    baseline: dict,
    primary_fid: str,
    max_nll: float | None,
    max_fid: float | None,
    max_regression: float,
) -> list[str]:
    """Reasons not to bless; empty means blessed. A threshold of None is not checked."""
    if not generative_metrics.is_finite(metrics):
        return [
            'non-finite metrics: '
            + ', '.join(
                k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)
            )
        ]
    reasons = []
    if max_nll is not None and metrics['nll_nats'] > max_nll:
        reasons.append(f'nll_nats {metrics["nll_nats"]:.3f} > threshold {max_nll}')
    if max_fid is not None and primary_fid and metrics[primary_fid] > max_fid:
        reasons.append(f'{primary_fid} {metrics[primary_fid]:.3f} > threshold {max_fid}')
    for key in [k for k in ('nll_nats', primary_fid) if k and baseline]:
        limit = baseline[key] + max_regression * abs(baseline[key])
        if metrics[key] > limit:
            reasons.append(
                f'{key} {metrics[key]:.3f} worse than baseline {baseline[key]:.3f} '
                f'beyond tolerance {max_regression:.1%}'
            )
    return reasons


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

        data = transformed.read_transformed_split(
            artifact_utils.get_single_uri(input_dict['examples']),
            artifact_utils.get_single_uri(input_dict['transform_graph']),
            options.split,
            limit=options.num_eval_examples,
        )
        real = np.asarray(transformed.to_model_images(data[records.IMAGE]))
        candidate = load_nvae(model)
        nll_images = (
            datasets.fixed_binarize(real, options.seed)
            if candidate.config.dataset == 'mnist'
            else real
        )
        networks = self._feature_networks(input_dict, options)

        def score(nvae):
            keras.utils.set_random_seed(options.seed)
            return generative_metrics.evaluate(
                nvae,
                nll_images,
                real,
                networks,
                num_iw_samples=options.num_iw_samples,
                fid_num_samples=options.fid_num_samples,
                temperature=options.sample_temperature,
                seed=options.seed,
            )

        metrics, generated = score(candidate)
        baseline_metrics = {}
        if baseline is not None and baseline.id != model.id:
            baseline_metrics, _ = score(load_nvae(baseline))
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

        self._write_evaluation(
            evaluation, candidate, metrics, baseline_metrics, generated, nll_images, reasons
        )
        self._write_blessing(blessing, model, baseline, reasons)
        logging.info(
            'Evaluation: %s; %s',
            json.dumps(metrics),
            'BLESSED' if not reasons else 'NOT BLESSED: ' + '; '.join(reasons),
        )

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
    def _write_evaluation(
        evaluation, candidate, metrics, baseline_metrics, generated, nll_images, reasons
    ):
        report = {
            'metrics': metrics,
            'baseline_metrics': baseline_metrics,
            'blessed': not reasons,
            'reasons': reasons,
        }
        io_utils.write_string_file(
            os.path.join(evaluation.uri, METRICS_FILE), json.dumps(report, indent=1, default=str)
        )
        scale = 2 if candidate.config.image_size <= 32 else 1
        io_utils.write_bytes_file(
            os.path.join(evaluation.uri, SAMPLES_PNG),
            images.png_bytes(images.grid(generated[:100], columns=10), scale),
        )
        originals = nll_images[:50]
        recons = keras.ops.convert_to_numpy(candidate.reconstruct(originals))
        pairs = np.stack([originals, recons], axis=1).reshape((-1,) + recons.shape[1:])
        io_utils.write_bytes_file(
            os.path.join(evaluation.uri, RECONSTRUCTIONS_PNG),
            images.png_bytes(images.grid(pairs, columns=10), scale),
        )
        set_metric_properties(evaluation, metrics)

    @staticmethod
    def _write_blessing(blessing, model, baseline, reasons):
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
        blessing.set_string_custom_property(REASONS_PROPERTY, '; '.join(reasons))
        marker = constants.BLESSED_FILE_NAME if blessed else constants.NOT_BLESSED_FILE_NAME
        io_utils.write_string_file(os.path.join(blessing.uri, marker), '')
