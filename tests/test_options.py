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
from pipeline import cli, code_fingerprints, configs


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
    # Besides them, only the hash of the code the executor runs.
    assert {*parameters, CODE_FINGERPRINT} == set(GenerativeEvaluatorSpec.PARAMETERS)
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
    assert (config.total_steps, config.warmup_steps, config.batch_size) == (6000, 75, 400)
    # A warm-up set by the user is taken as given.
    given = TrainingOptions(preset='paper_mnist', train_steps=6000, overrides={'warmup_steps': '9'})
    assert given.model_config(image_size=32).warmup_steps == 9


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
    assert custom_config[CODE_FINGERPRINT] == code_fingerprints.fingerprint('Trainer')
    assert TrainingOptions.from_custom_config(
        custom_config, train_steps=TrainingOptions.train_steps, eval_steps=1
    ) == TrainingOptions(binarization='static', eval_steps=1)


def test_each_component_fingerprints_exactly_the_code_it_runs(tmp_path):
    """An edit to evaluation code reruns the Evaluator and leaves the Trainer (and so its cache
    and its checkpoints) alone; an edit to model code reruns both; a component's own executor
    is in its key."""
    import shutil

    def closure(component):
        return set(code_fingerprints.module_closure(code_fingerprints.ENTRY_MODULES[component]))

    trainer, evaluator = closure('Trainer'), closure('GenerativeEvaluator')
    assert {'components.trainer.trainer_module', 'nvae_tfx.training.loop'} <= trainer
    assert {'model_code.nvae', 'model_code.layers', 'nvae_tfx.data.transformed'} <= trainer
    assert not [m for m in trainer if m.startswith('nvae_tfx.evaluation')]
    assert {'components.evaluator.executor', 'nvae_tfx.evaluation.blessing'} <= evaluator
    assert {'nvae_tfx.evaluation.fid', 'model_code.nvae'} <= evaluator
    assert 'model_code.nvae' not in closure('Transform')
    assert 'components.validation_gate' in closure('ValidationGate')

    root = tmp_path / 'project'
    for package in code_fingerprints.PACKAGES:
        shutil.copytree(os.path.join(configs.PROJECT_ROOT, package), root / package)
    before = {
        c: code_fingerprints.fingerprint(c, str(root)) for c in code_fingerprints.ENTRY_MODULES
    }
    assert before == {c: code_fingerprints.fingerprint(c) for c in code_fingerprints.ENTRY_MODULES}

    def edited(path):
        with open(root / path, 'a') as f:
            f.write('\n# edited\n')
        after = {c: code_fingerprints.fingerprint(c, str(root)) for c in before}
        before.update(after)
        return {c for c in after if after[c] != changed_from[c]}

    changed_from = dict(before)
    assert edited('nvae_tfx/evaluation/blessing.py') == {'GenerativeEvaluator'}
    changed_from = dict(before)
    assert edited('model_code/layers.py') == {'Trainer', 'GenerativeEvaluator'}
    changed_from = dict(before)
    assert edited('components/evaluator/executor.py') == {'GenerativeEvaluator'}
    changed_from = dict(before)
    assert (
        edited('nvae_tfx/options.py')
        == {c for c in before if 'nvae_tfx.options' in closure(c)}
        > {'Trainer', 'Transform', 'ImageExampleGen'}
    )


# --- presets and evaluation protocols: what each resolves to -----------------------------------

# (preset, dataset): global batch, steps per epoch, steps, LR warm-up, protocol, readjustment
# (passes, batch). The paper's runs are the official README commands: MNIST 2 GPUs x 200 for 400
# epochs of 60,000 digits, CelebA-64 8 GPUs x 16 for 90 epochs of 162,770 images, warm-up 5
# epochs; the others keep the CPU defaults.
RESOLVED = {
    ('tiny', 'mnist'): (8, 50, 100, 5, 'quick', 100, 16),
    ('cpu', 'mnist'): (64, 75, 1200, 12, 'quick', 100, 16),
    ('paper_mnist', 'mnist'): (400, 150, 60_000, 750, 'paper', 500, 2),
    ('paper_celeba64', 'celeba'): (128, 1271, 114_390, 6355, 'paper', 500, 2),
}


@pytest.mark.parametrize(('preset', 'dataset'), list(RESOLVED))
def test_each_preset_resolves_its_schedule_and_protocol(preset, dataset):
    batch, per_epoch, steps, warmup, protocol, passes, readjust_batch = RESOLVED[(preset, dataset)]
    training = TrainingOptions(dataset=dataset, preset=preset)
    assert (training.batch_size, training.steps_per_epoch, training.train_steps) == (
        batch,
        per_epoch,
        steps,
    )
    assert training.eval_protocol == protocol
    assert (training.readjust_bn_passes, training.readjust_bn_batch) == (passes, readjust_batch)
    assert training.sample_temperature == 1.0
    config = training.model_config(image_size=64 if dataset == 'celeba' else 32)
    assert (config.batch_size, config.total_steps, config.warmup_steps) == (batch, steps, warmup)
    assert config.steps_per_epoch == per_epoch
    assert (config.learning_rate, config.learning_rate_min) == (1e-2, 1e-4)


def test_official_run_follows_train_py():
    from model_code import config as nvae_config

    # --batch_size is per GPU; each GPU reads ceil(N / GPUs) images and drops its last partial
    # batch: 162,770 / 8 = 20,346.25 -> 20,347 -> 1,271 batches of 16.
    assert nvae_config.official_run(8, 16, 90, 162_770) == dict(
        batch_size=128, steps_per_epoch=1271, total_steps=114_390, warmup_steps=6355
    )
    assert nvae_config.official_run(2, 200, 400, 60_000, warmup_epochs=1)['warmup_steps'] == 150


def test_protocols_resolve_every_evaluation_setting():
    quick, paper = EvaluationOptions(), EvaluationOptions(protocol='paper')
    assert quick.protocol == 'quick'  # the default preset's
    assert (quick.split, quick.num_eval_examples, quick.num_iw_samples) == ('eval', 500, 50)
    assert (quick.fid_num_samples, quick.fid_reference_examples) == (1000, 0)
    assert quick.fid_reference_split == 'eval'  # the scored split, whole
    assert quick.sample_temperature == 1.0
    # NVAE's evaluation: K=1000 on the whole split; FID mode's temperature (its readjustment is
    # the Trainer's: test_presets_own_their_settings_and_flags_given_win).
    assert (paper.split, paper.num_eval_examples, paper.num_iw_samples) == ('eval', 0, 1000)
    assert (paper.fid_num_samples, paper.fid_reference_split) == (10_000, 'train')
    assert paper.fid_reference_examples == 0  # the whole split
    assert paper.sample_temperature == 1.0
    # The scored split is followed by the quick protocol's reference, not by the paper's.
    assert EvaluationOptions(split='test').fid_reference_split == 'test'
    assert EvaluationOptions(protocol='paper', split='test').fid_reference_split == 'train'
    # A value given wins over the protocol's.
    assert EvaluationOptions(protocol='paper', num_iw_samples=100).num_iw_samples == 100


def test_every_preset_names_a_known_protocol():
    from model_code import config as nvae_config
    from nvae_tfx import options

    assert set(nvae_config.EVALUATION_PROTOCOLS) == set(nvae_config.PRESETS)
    assert set(nvae_config.EVALUATION_PROTOCOLS.values()) <= set(options.PROTOCOLS)
    with pytest.raises(ValueError, match="eval_protocol must be one of .* got 'full'"):
        TrainingOptions(eval_protocol='full')


def test_bad_settings_are_refused_with_their_name():
    with pytest.raises(ValueError, match='overrides cannot set batch_size: .*--batch_size'):
        TrainingOptions(overrides={'batch_size': '8'})
    with pytest.raises(ValueError, match='overrides cannot set total_steps: .*--train_steps'):
        TrainingOptions(overrides={'total_steps': '8'})
    with pytest.raises(ValueError, match="paper_celeba64 is the paper's celeba model"):
        TrainingOptions(preset='paper_celeba64')
    with pytest.raises(ValueError, match='batch_size must be at least 1, got 0'):
        TrainingOptions(batch_size=0)
    with pytest.raises(ValueError, match='num_iw_samples must be at least 1'):
        EvaluationOptions(num_iw_samples=0)
    with pytest.raises(ValueError, match="split must be one of .* got 'valid'"):
        EvaluationOptions(split='valid')
    with pytest.raises(ValueError, match='max_nll must be a finite number, got nan'):
        EvaluationOptions(max_nll=float('nan'))


def parse(*argv):
    return cli.parse(cli.pipeline_parser(''), list(argv))


def test_presets_own_their_settings_and_flags_given_win():
    args = parse('--preset=paper_mnist', '--source=idx', '--data_dir=/d')
    training, evaluation = cli.training_options(args), cli.evaluation_options(args)
    assert (training.batch_size, training.train_steps, evaluation.num_iw_samples) == (
        400,
        60_000,
        1000,
    )
    args = parse(
        '--preset=paper_mnist', '--batch_size=100', '--iw_samples=10', '--readjust_bn_passes=7',
        '--eval_examples=2000', '--fid_reference_examples=0',
    )  # fmt: skip
    training, evaluation = cli.training_options(args), cli.evaluation_options(args)
    assert (training.batch_size, training.train_steps) == (100, 60_000)
    assert (evaluation.num_iw_samples, evaluation.num_eval_examples) == (10, 2000)
    assert evaluation.fid_reference_examples == 0 and evaluation.fid_num_samples == 10_000
    assert training.readjust_bn_passes == 7
    # The protocol flag switches every evaluation setting; single flags still override it.
    args = parse('--preset=paper_mnist', '--eval_protocol=quick', '--fid_samples=2000')
    evaluation = cli.evaluation_options(args)
    assert (evaluation.protocol, evaluation.num_iw_samples, evaluation.fid_num_samples) == (
        'quick',
        50,
        2000,
    )
    assert cli.training_options(args).readjust_bn_passes == 100


def test_the_paper_celeba_preset_brings_its_dataset():
    args = parse('--preset=paper_celeba64', '--data_dir=/d')
    assert args.dataset == 'celeba' and cli.source_options(args).source == 'dir'
    assert cli.training_options(args).batch_size == 128
    with pytest.raises(ValueError, match="paper_mnist is the paper's mnist model"):
        cli.training_options(parse('--preset=paper_mnist', '--dataset=celeba', '--data_dir=/d'))


def test_max_fid_without_a_feature_network_is_refused():
    with pytest.raises(ValueError, match='--max_fid=30.0: no feature network .* celeba'):
        cli.evaluation_options(parse('--dataset=celeba', '--data_dir=/d', '--max_fid=30'))
    with pytest.raises(ValueError, match='or drop --no_digit_classifier'):
        cli.evaluation_options(parse('--no_digit_classifier', '--max_fid=30'))
    assert cli.evaluation_options(parse('--max_fid=30')).max_fid == 30.0  # the digit classifier
    with_inception = parse('--dataset=celeba', '--data_dir=/d', '--max_fid=30',
                           '--inception_weights=/w.h5')  # fmt: skip
    assert cli.evaluation_options(with_inception).inception_weights == '/w.h5'


def test_pipeline_refuses_sampling_settings_that_differ_from_the_trainers(tmp_path):
    from pipeline import nvae_pipeline

    with pytest.raises(ValueError, match='EvaluationOptions.sample_temperature 0.5 is not'):
        nvae_pipeline.create_pipeline(
            'nvae-test', str(tmp_path), SourceOptions(),
            training=TrainingOptions(), evaluation=EvaluationOptions(sample_temperature=0.5),
        )  # fmt: skip
    # Left out, the evaluation follows the training's protocol and sampling settings.
    pipeline = nvae_pipeline.create_pipeline(
        'nvae-test', str(tmp_path), SourceOptions(),
        training=TrainingOptions(preset='paper_mnist', readjust_bn_passes=3),
    )  # fmt: skip
    [evaluator] = [c for c in pipeline.components if c.id == 'GenerativeEvaluator']
    assert evaluator.exec_properties['protocol'] == 'paper'
    assert evaluator.exec_properties['num_iw_samples'] == 1000
    assert 'readjust_bn_passes' not in evaluator.exec_properties  # recorded from the model


def print_config(runner, *argv):
    """The JSON a runner prints with --print_config, and whether TFX or TensorFlow got imported."""
    script = (
        'import json, sys\n'
        f'from pipeline import {runner}\n'
        f'{runner}.main({["--print_config", *argv]!r})\n'
        "print(json.dumps(sorted(m for m in ('tfx.v1', 'tensorflow', 'keras', 'apache_beam') "
        'if m in sys.modules)))\n'
    )
    out = subprocess.run(
        [sys.executable, '-c', script], capture_output=True, text=True, cwd='/', check=True
    )
    *config, imported = out.stdout.strip().splitlines()
    return json.loads('\n'.join(config)), json.loads(imported)


def test_print_config_shows_the_resolved_paper_runs_without_importing_tfx():
    config, imported = print_config(
        'run_local', '--preset=paper_mnist', '--source=idx', '--data_dir=/data/mnist'
    )
    assert imported == []
    assert config['schedule'] == {
        'global_batch': 400,
        'train_steps': 60_000,
        'steps_per_epoch': 150,
        'epochs': 400.0,
        'learning_rate': 0.01,
        'lr_warmup_steps': 750,
        'lr_cosine_to': 0.0001,
        'kl_warmup_steps': 18_000,
    }
    assert config['model']['num_groups_per_scale'] == 10 and config['model']['batch_size'] == 400
    evaluation = config['evaluation']
    assert (evaluation['protocol'], evaluation['num_iw_samples']) == ('paper', 1000)
    assert (evaluation['num_eval_examples'], evaluation['fid_num_samples']) == (0, 10_000)
    training = config['training']
    assert (training['readjust_bn_passes'], training['readjust_bn_batch']) == (500, 2)
    assert config['source'] == {
        'dataset': 'mnist', 'source': 'idx', 'data_dir': '/data/mnist', 'on_corrupt': 'fail',
        'image_shape': None, 'eval_fraction': None,
    }  # fmt: skip
    assert config['beam_args'] == list(configs.DEFAULT_BEAM_ARGS)
    assert config['runner']['metadata_path'] == configs.metadata_path('mnist')

    config, _ = print_config(
        'run_local', '--preset=paper_celeba64', '--data_dir=/data/celeba', '--train_steps=9000',
        '--', '--direct_num_workers=0',
    )  # fmt: skip
    assert config['training']['dataset'] == 'celeba' and config['model']['image_size'] == 64
    assert config['schedule']['global_batch'] == 128
    assert config['schedule']['train_steps'] == 9000  # the flag wins; the warm-up follows
    assert config['schedule']['lr_warmup_steps'] == round(9000 * 6355 / 114_390)
    assert config['evaluation']['split'] == 'eval' and config['beam_args'] == [
        '--direct_num_workers=0'
    ]


def test_print_config_on_kubeflow_shows_runtime_parameters_and_resources():
    config, imported = print_config(
        'run_kubeflow', '--preset=paper_celeba64', '--data_dir=gs://b/celeba',
        '--pipeline_root=gs://b/root', '--image=IMAGE', '--gpus=8', '--gpu_type=NVIDIA_L4',
        '--fid_samples=50000',
    )  # fmt: skip
    assert imported == []
    assert config['runner']['accelerators'] == {'type': 'NVIDIA_L4', 'count': 8}
    assert config['runner']['serving_dir'] == 'gs://b/root/serving'
    assert config['evaluation']['fid_num_samples'] == 50_000
    assert config['schedule']['steps_per_epoch'] == 1271


def test_print_config_reports_bad_settings_in_one_line():
    out = subprocess.run(
        [sys.executable, '-m', 'pipeline.run_local', '--dataset=celeba', '--data_dir=/d',
         '--max_fid=20', '--print_config'],
        capture_output=True, text=True, cwd=configs.PROJECT_ROOT,
    )  # fmt: skip
    assert out.returncode == 1 and out.stdout == ''
    assert out.stderr.strip().splitlines() == [
        'error: --max_fid=20.0: no feature network measures FID on celeba here; give '
        '--inception_weights FILE'
    ]


def test_warm_start_feeds_the_last_blessed_model_to_the_trainer(tmp_path):
    from pipeline import nvae_pipeline

    def trainer_and_resolver(*flags):
        args = parse(*flags)
        assert cli.training_options(args).warm_start == ('--warm_start' in flags)
        pipeline = nvae_pipeline.create_pipeline(
            'nvae-test', str(tmp_path), SourceOptions(),
            training=cli.training_options(args), evaluation=cli.evaluation_options(args),
        )  # fmt: skip
        nodes = {c.id: c for c in pipeline.components}
        return nodes['Trainer'], nodes.get('warm_start_model_resolver')

    trainer, resolver = trainer_and_resolver('--warm_start')
    assert trainer.inputs['base_model'].producer_component_id == resolver.id
    trainer, resolver = trainer_and_resolver()
    assert 'base_model' not in trainer.inputs and resolver is None
