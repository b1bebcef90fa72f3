"""The components' typed options (nvae_tfx/options.py): one encoding across the TFX boundary
each, defaults read from the dataclasses by the flags, the Evaluator's spec and the pipeline."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from nvae_tfx.options import (
    CODE_FINGERPRINT,
    EvaluationOptions,
    SourceOptions,
    TrainingOptions,
    TransformOptions,
)
from pipeline import cli, configs


def test_transform_options_cross_with_the_settings_of_their_dataset():
    mnist = TransformOptions(binarization='static', binarization_seed=7, image_size=32)
    assert mnist.to_custom_config() == {
        'dataset': 'mnist',
        'binarization': 'static',
        'binarization_seed': 7,
    }
    # CelebA settings do not reach the MNIST Transform, so changing them leaves its cache.
    assert TransformOptions.from_custom_config(mnist.to_custom_config()) == dataclasses.replace(
        mnist, image_size=TransformOptions.image_size
    )
    celeba = TransformOptions(dataset='celeba', image_size=32, celeba_pixels='float')
    assert (
        TransformOptions.from_custom_config({**celeba.to_custom_config(), CODE_FINGERPRINT: 'abc'})
        == celeba
    )


def test_training_options_round_trip_with_steps_from_tfx_args():
    options = TrainingOptions(
        dataset='celeba', preset='tiny', overrides={'num_latent_per_group': '8'}, train_steps=12,
        eval_steps=3, jit_compile='false', sample_temperature=0.8,
    )  # fmt: skip
    custom_config = options.to_custom_config()
    assert not set(TrainingOptions.STEP_FIELDS) & set(custom_config)
    decoded = TrainingOptions.from_custom_config(
        {**custom_config, CODE_FINGERPRINT: 'abc'}, train_steps=12, eval_steps=3
    )
    assert decoded == options
    # Numbers that crossed loosely (as floats) come back as their fields' types.
    loose = TrainingOptions.from_custom_config({'batch_size': 8.0}, train_steps=5, eval_steps=1)
    assert loose.batch_size == 8 and isinstance(loose.batch_size, int)


def test_unknown_and_invalid_settings_are_errors_naming_them():
    with pytest.raises(ValueError, match=r"no settings \['batch_sise'\]"):
        TrainingOptions.from_custom_config({'batch_sise': 8}, train_steps=5, eval_steps=1)
    with pytest.raises(ValueError, match="preset must be one of .* got 'papers'"):
        TrainingOptions(preset='papers')
    with pytest.raises(ValueError, match=r"no model_code config field: \['num_chanels'\]"):
        TrainingOptions(overrides={'num_chanels': '8'})
    with pytest.raises(ValueError, match="binarization must be one of .* got 'fixed'"):
        TransformOptions(binarization='fixed')
    with pytest.raises(ValueError, match="source for celeba must be one of .* got 'idx'"):
        SourceOptions(dataset='celeba', source='idx', data_dir='/data')


def test_source_defaults_to_the_datasets_first():
    assert SourceOptions().source == 'embedded'
    assert SourceOptions(dataset='celeba', data_dir='/data').source == 'dir'


def test_evaluation_options_are_the_evaluators_execution_parameters():
    from components.evaluator.component import GenerativeEvaluatorSpec

    options = EvaluationOptions(num_iw_samples=7, max_nll=90.0, digit_classifier_epochs=3)
    parameters = options.evaluator_parameters()
    assert set(parameters) == set(GenerativeEvaluatorSpec.PARAMETERS)
    assert not set(EvaluationOptions.CLASSIFIER_FIELDS) & set(parameters)
    assert GenerativeEvaluatorSpec.PARAMETERS['max_nll'].optional
    assert GenerativeEvaluatorSpec.PARAMETERS['max_nll'].type is float
    assert GenerativeEvaluatorSpec.PARAMETERS['num_iw_samples'].type is int
    # TFX leaves out parameters that are None; they come back at their defaults.
    present = {k: v for k, v in parameters.items() if v is not None}
    assert EvaluationOptions.from_evaluator_parameters(present) == dataclasses.replace(
        options, digit_classifier_epochs=EvaluationOptions.digit_classifier_epochs
    )


def test_flag_defaults_are_the_options_defaults():
    args = cli.parse(cli.pipeline_parser(''), [])
    assert cli.source_options(args) == SourceOptions()
    assert cli.transform_options(args) == TransformOptions()
    assert cli.training_options(args) == TrainingOptions()
    assert cli.evaluation_options(args) == EvaluationOptions()


def test_every_training_setting_has_a_flag():
    args = cli.parse(
        cli.pipeline_parser(''),
        ['--dataset=celeba', '--jit_compile=false', '--sample_temperature=0.7',
         '--set', 'num_nf=1', '--mixed_precision=mixed_bfloat16'],
    )  # fmt: skip
    training = cli.training_options(args)
    assert (training.dataset, training.jit_compile, training.mixed_precision) == (
        'celeba',
        'false',
        'mixed_bfloat16',
    )
    assert training.overrides == {'num_nf': '1'}
    assert training.sample_temperature == cli.evaluation_options(args).sample_temperature == 0.7


def test_flags_are_read_without_importing_tensorflow():
    """Runners parse flags before TensorFlow is imported: its log level and oneDNN switch are
    set from them first."""
    script = (
        'import sys; from pipeline import cli; '
        "cli.parse(cli.pipeline_parser(''), []); "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, '-c', script], capture_output=True, text=True, cwd='/', check=True
    )
    assert out.stdout.strip() == '[]'


def test_training_steps_scale_the_presets_schedule():
    config = TrainingOptions(preset='paper_mnist', train_steps=6000).model_config(image_size=32)
    assert (config.total_steps, config.warmup_steps, config.batch_size) == (6000, 75, 64)


def test_pipeline_refuses_options_for_other_data(tmp_path):
    from pipeline import nvae_pipeline

    def build(**options):
        return nvae_pipeline.create_pipeline('nvae-test', str(tmp_path), SourceOptions(), **options)

    with pytest.raises(ValueError, match="TrainingOptions.dataset 'celeba' is not the dataset"):
        build(training=TrainingOptions(dataset='celeba'))
    with pytest.raises(ValueError, match="binarization 'static' is not the one Transform"):
        build(training=TrainingOptions(binarization='static'))
    pipeline = build(
        transform=TransformOptions(binarization='static'),
        training=TrainingOptions(binarization='static'),
    )
    [trainer] = [c for c in pipeline.components if c.id == 'Trainer']
    custom_config = json.loads(trainer.exec_properties['custom_config'])
    assert custom_config[CODE_FINGERPRINT] == configs.code_fingerprint(configs.TRAINER_CODE)
    assert TrainingOptions.from_custom_config(
        custom_config, train_steps=TrainingOptions.train_steps, eval_steps=1
    ) == TrainingOptions(binarization='static', eval_steps=1)


def test_code_fingerprints_cover_the_library_and_the_module_directories():
    def files(patterns):
        import glob

        return {
            os.path.relpath(p, configs.PROJECT_ROOT)
            for pattern in patterns
            for p in glob.glob(os.path.join(configs.PROJECT_ROOT, pattern), recursive=True)
        }

    trainer, transform = files(configs.TRAINER_CODE), files(configs.TRANSFORM_CODE)
    assert {'components/trainer/trainer_module.py', 'nvae_tfx/training/loop.py'} <= trainer
    assert {'model_code/nvae.py', 'nvae_tfx/datasets.py'} <= trainer
    assert {'components/transform/preprocessing.py', 'nvae_tfx/datasets.py'} <= transform
    assert 'model_code/nvae.py' not in transform
