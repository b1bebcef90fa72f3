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
from tests.support.runner_calls import print_config, run_local_spec


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
    celeba = TransformOptions(dataset='celeba', image_size=32, celeba_pixels='float').resolved()
    assert (
        TransformOptions.from_custom_config({**celeba.to_custom_config(), CODE_FINGERPRINT: 'abc'})
        == celeba
    )


def test_training_options_round_trip_with_steps_from_tfx_args():
    options = TrainingOptions(
        dataset='celeba', preset='tiny', overrides={'num_latent_per_group': '8'}, train_steps=12,
        eval_steps=3, jit_compile='false', sample_temperature=0.8,
    ).resolved()  # fmt: skip
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
    with pytest.raises(ValueError, match="--set num_chanels=8: unknown config field 'num_chanels'"):
        TrainingOptions(overrides={'num_chanels': '8'})
    with pytest.raises(ValueError, match="binarization must be one of .* got 'fixed'"):
        TransformOptions(binarization='fixed')
    with pytest.raises(ValueError, match="source for celeba must be one of .* got 'idx'"):
        SourceOptions(dataset='celeba', source='idx', data_dir='/data')


def test_source_defaults_to_the_datasets_first():
    assert SourceOptions().resolved().source == 'embedded'
    assert SourceOptions(dataset='celeba', data_dir='/data').resolved().source == 'dir'


def test_options_hold_what_was_given_and_resolve_afresh():
    """Nothing is filled in place: replacing the preset of given options and resolving again
    takes the new preset's schedule, and a value given always wins."""
    given = TrainingOptions(preset='tiny')
    assert given.train_steps is None and given.unresolved()
    tiny = given.resolved()
    assert (tiny.train_steps, tiny.batch_size) == (100, 8) and not tiny.unresolved()
    paper = dataclasses.replace(given, preset='paper_mnist').resolved()
    assert (paper.train_steps, paper.batch_size, paper.eval_protocol) == (60_000, 400, 'paper')
    assert dataclasses.replace(given, train_steps=7).resolved().train_steps == 7
    assert tiny.resolved() == tiny  # resolving what is resolved changes nothing
    with pytest.raises(ValueError, match=r'TrainingOptions is not resolved \(.*train_steps'):
        given.to_custom_config()


def test_evaluation_options_are_the_evaluators_execution_parameters():
    from components.evaluator.component import GenerativeEvaluatorSpec

    options = EvaluationOptions(iw_samples=7, max_nll=90.0, digit_classifier_epochs=3).resolved()
    parameters = options.evaluator_parameters()
    # Besides them, only the hash of the code the executor runs.
    assert {*parameters, CODE_FINGERPRINT} == set(GenerativeEvaluatorSpec.PARAMETERS)
    assert not set(EvaluationOptions.CLASSIFIER_FIELDS) & set(parameters)
    assert GenerativeEvaluatorSpec.PARAMETERS['max_nll'].optional
    assert GenerativeEvaluatorSpec.PARAMETERS['max_nll'].type is float
    assert GenerativeEvaluatorSpec.PARAMETERS['iw_samples'].type is int
    # TFX leaves out parameters that are None; they come back at their defaults.
    present = {k: v for k, v in parameters.items() if v is not None}
    assert EvaluationOptions.from_evaluator_parameters(present) == dataclasses.replace(
        options, digit_classifier_epochs=EvaluationOptions.digit_classifier_epochs
    )


def test_flag_defaults_are_the_options_defaults():
    spec = run_local_spec()
    assert spec.source == SourceOptions().resolved()
    assert spec.transform == TransformOptions().resolved()
    assert spec.training == TrainingOptions().resolved()
    assert spec.evaluation == EvaluationOptions().resolved()
    assert spec.paths.metadata_path == configs.metadata_path('mnist')


def test_every_option_field_is_a_flag_of_its_name():
    """Flags are made from the fields: a field's name is its flag's (a True default is
    --no_<name>), its help the field's; only the --set flag of overrides and the two the
    evaluation shares with the training are other."""
    parser = cli.parser('', cli.LocalOutputs)
    flags = {a.dest: a.option_strings[0] for a in parser._actions if a.option_strings}
    for cls in cli.OPTIONS:
        for field in dataclasses.fields(cls):
            if field.name in ('overrides',) or field.metadata.get('flag', '') is None:
                continue
            expected = f'--no_{field.name}' if field.default is True else f'--{field.name}'
            assert flags[field.name] == expected, field.name
    assert flags['overrides'] == '--set'
    help_text = parser.format_help()
    assert "the evaluation protocol's (paper 1000, quick 50, smoke 2)" in help_text  # K


def test_every_training_setting_has_a_flag():
    spec = run_local_spec(
        '--dataset=celeba', '--data_dir=/d', '--jit_compile=false', '--sample_temperature=0.7',
        '--set', 'num_nf=1', '--mixed_precision=mixed_bfloat16', '--eval_steps=3',
    )  # fmt: skip
    training = spec.training
    assert (training.dataset, training.jit_compile, training.mixed_precision) == (
        'celeba',
        'false',
        'mixed_bfloat16',
    )
    assert training.overrides == {'num_nf': '1'} and training.eval_steps == 3
    assert training.sample_temperature == spec.evaluation.sample_temperature == 0.7


def test_flags_are_read_without_importing_tensorflow():
    """Runners parse flags before TensorFlow is imported: its log level and oneDNN switch are
    set from them first."""
    script = (
        'import sys; from tests.support.runner_calls import run_local_spec; run_local_spec(); '
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, '-c', script],
        capture_output=True,
        text=True,
        cwd=configs.PROJECT_ROOT,
        check=True,
    )
    assert out.stdout.strip() == '[]'


def test_training_steps_scale_the_presets_schedule():
    config = (
        TrainingOptions(preset='paper_mnist', train_steps=6000)
        .resolved()
        .model_config(image_size=32)
    )
    assert (config.total_steps, config.warmup_steps, config.batch_size) == (6000, 75, 400)
    # A warm-up set by the user is taken as given.
    given = TrainingOptions(preset='paper_mnist', train_steps=6000, overrides={'warmup_steps': '9'})
    assert given.resolved().model_config(image_size=32).warmup_steps == 9


def spec_of(tmp_path, source=None, **options):
    from tests.support.pipeline_helpers import run_spec

    return run_spec(tmp_path, source or SourceOptions(), **options)


def test_pipeline_refuses_options_for_other_data(tmp_path):
    from pipeline import nvae_pipeline

    def build(**options):
        return nvae_pipeline.create_pipeline(spec_of(tmp_path, **options))

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
    assert (
        TrainingOptions.from_custom_config(custom_config, train_steps=1200, eval_steps=1)
        == TrainingOptions(binarization='static', eval_steps=1).resolved()
    )


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
    ('tiny', 'mnist'): (8, 50, 100, 5, 'smoke', 2, 4),
    ('cpu', 'mnist'): (64, 75, 1200, 12, 'quick', 100, 16),
    ('paper_mnist', 'mnist'): (400, 150, 60_000, 750, 'paper', 500, 2),
    ('paper_celeba64', 'celeba'): (128, 1271, 114_390, 6355, 'paper', 500, 2),
}


@pytest.mark.parametrize(('preset', 'dataset'), list(RESOLVED))
def test_each_preset_resolves_its_schedule_and_protocol(preset, dataset):
    batch, per_epoch, steps, warmup, protocol, passes, readjust_batch = RESOLVED[(preset, dataset)]
    training = TrainingOptions(dataset=dataset, preset=preset).resolved()
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
    quick = EvaluationOptions().resolved()
    paper = EvaluationOptions(eval_protocol='paper').resolved()
    assert quick.eval_protocol == 'quick'  # the default preset's
    assert (quick.eval_split, quick.eval_examples, quick.iw_samples) == ('eval', 500, 50)
    assert (quick.fid_samples, quick.fid_reference_examples) == (1000, 0)
    assert quick.fid_reference_split == 'eval'  # the scored split, whole
    assert quick.sample_temperature == 1.0
    # NVAE's evaluation: K=1000 on the whole split; FID mode's temperature (its readjustment is
    # the Trainer's: test_presets_own_their_settings_and_flags_given_win).
    assert (paper.eval_split, paper.eval_examples, paper.iw_samples) == ('eval', 0, 1000)
    assert (paper.fid_samples, paper.fid_reference_split) == (10_000, 'train')
    assert paper.fid_reference_examples == 0  # the whole split
    assert paper.sample_temperature == 1.0
    # The scored split is followed by the quick protocol's reference, not by the paper's.
    assert EvaluationOptions(eval_split='test').resolved().fid_reference_split == 'test'
    paper_test = EvaluationOptions(eval_protocol='paper', eval_split='test').resolved()
    assert paper_test.fid_reference_split == 'train'
    # A value given wins over the protocol's.
    assert EvaluationOptions(eval_protocol='paper', iw_samples=100).resolved().iw_samples == 100


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
    with pytest.raises(ValueError, match='iw_samples must be at least 1'):
        EvaluationOptions(iw_samples=0)
    with pytest.raises(ValueError, match="eval_split must be one of .* got 'valid'"):
        EvaluationOptions(eval_split='valid')
    with pytest.raises(ValueError, match='max_nll must be a finite number, got nan'):
        EvaluationOptions(max_nll=float('nan'))
    # Ranges every runner gets, from the options themselves.
    with pytest.raises(ValueError, match='checkpoint_every_steps must be at least 0, got -1'):
        TrainingOptions(checkpoint_every_steps=-1)
    with pytest.raises(ValueError, match='image_size must be at least 1, got 0'):
        TransformOptions(image_size=0)
    with pytest.raises(ValueError, match='sample_temperature must be positive, got 0'):
        TrainingOptions(sample_temperature=0.0)
    with pytest.raises(ValueError, match='nll_tolerance must be at least 0, got -0.1'):
        EvaluationOptions(nll_tolerance=-0.1)


parse = run_local_spec


def test_presets_own_their_settings_and_flags_given_win():
    spec = parse('--preset=paper_mnist', '--source=idx', '--data_dir=/d')
    training, evaluation = spec.training, spec.evaluation
    assert (training.batch_size, training.train_steps, evaluation.iw_samples) == (400, 60_000, 1000)
    spec = parse(
        '--preset=paper_mnist', '--batch_size=100', '--iw_samples=10', '--readjust_bn_passes=7',
        '--eval_examples=2000', '--fid_reference_examples=0', '--source=idx', '--data_dir=/d',
    )  # fmt: skip
    training, evaluation = spec.training, spec.evaluation
    assert (training.batch_size, training.train_steps) == (100, 60_000)
    assert (evaluation.iw_samples, evaluation.eval_examples) == (10, 2000)
    assert evaluation.fid_reference_examples == 0 and evaluation.fid_samples == 10_000
    assert training.readjust_bn_passes == 7
    # The protocol flag switches every evaluation setting; single flags still override it.
    spec = parse(
        '--preset=paper_mnist', '--eval_protocol=quick', '--fid_samples=2000', '--source=idx',
        '--data_dir=/d',
    )  # fmt: skip
    evaluation = spec.evaluation
    assert (evaluation.eval_protocol, evaluation.iw_samples, evaluation.fid_samples) == (
        'quick',
        50,
        2000,
    )
    assert spec.training.readjust_bn_passes == 100


def test_the_paper_celeba_preset_brings_its_dataset():
    spec = parse('--preset=paper_celeba64', '--data_dir=/d')
    assert spec.source.dataset == 'celeba' and spec.source.source == 'dir'
    assert spec.training.batch_size == 128
    with pytest.raises(ValueError, match="paper_mnist is the paper's mnist model"):
        parse('--preset=paper_mnist', '--dataset=celeba', '--data_dir=/d')


def test_max_fid_without_a_feature_network_is_refused():
    with pytest.raises(ValueError, match='--max_fid=30.0: no feature network .* celeba'):
        parse('--dataset=celeba', '--data_dir=/d', '--max_fid=30')
    with pytest.raises(ValueError, match='or drop --no_digit_classifier'):
        parse('--no_digit_classifier', '--max_fid=30')
    assert parse('--max_fid=30').evaluation.max_fid == 30.0  # the digit classifier
    with_inception = parse('--dataset=celeba', '--data_dir=/d', '--max_fid=30',
                           '--inception_weights=/w.h5')  # fmt: skip
    assert with_inception.evaluation.inception_weights == '/w.h5'


def test_pipeline_refuses_sampling_settings_that_differ_from_the_trainers(tmp_path):
    from pipeline import nvae_pipeline

    with pytest.raises(ValueError, match='EvaluationOptions.sample_temperature 0.5 is not'):
        spec_of(
            tmp_path, training=TrainingOptions(),
            evaluation=EvaluationOptions(sample_temperature=0.5),
        )  # fmt: skip
    # Left out, the evaluation follows the training's protocol and sampling settings.
    pipeline = nvae_pipeline.create_pipeline(
        spec_of(tmp_path, training=TrainingOptions(preset='paper_mnist', readjust_bn_passes=3))
    )
    [evaluator] = [c for c in pipeline.components if c.id == 'GenerativeEvaluator']
    assert evaluator.exec_properties['eval_protocol'] == 'paper'
    assert evaluator.exec_properties['iw_samples'] == 1000
    assert 'readjust_bn_passes' not in evaluator.exec_properties  # recorded from the model


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
    assert (evaluation['eval_protocol'], evaluation['iw_samples']) == ('paper', 1000)
    assert (evaluation['eval_examples'], evaluation['fid_samples']) == (0, 10_000)
    training = config['training']
    assert (training['readjust_bn_passes'], training['readjust_bn_batch']) == (500, 2)
    assert config['source'] == {
        'dataset': 'mnist', 'source': 'idx', 'data_dir': '/data/mnist', 'on_corrupt': 'fail',
        'image_shape': None, 'eval_fraction': None,
    }  # fmt: skip
    assert config['beam_args'] == list(configs.DEFAULT_BEAM_ARGS)
    assert config['paths']['metadata_path'] == configs.metadata_path('mnist')

    config, _ = print_config(
        'run_local', '--preset=paper_celeba64', '--data_dir=/data/celeba', '--train_steps=9000',
        '--', '--direct_num_workers=0',
    )  # fmt: skip
    assert config['training']['dataset'] == 'celeba' and config['model']['image_size'] == 64
    assert config['schedule']['global_batch'] == 128
    assert config['schedule']['train_steps'] == 9000  # the flag wins; the warm-up follows
    assert config['schedule']['lr_warmup_steps'] == round(9000 * 6355 / 114_390)
    assert config['evaluation']['eval_split'] == 'eval' and config['beam_args'] == [
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
    assert config['paths']['serving_dir'] == 'gs://b/root/serving'
    assert config['evaluation']['fid_samples'] == 50_000
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
        spec = parse(*flags)
        assert spec.training.warm_start == ('--warm_start' in flags)
        pipeline = nvae_pipeline.create_pipeline(spec)
        nodes = {c.id: c for c in pipeline.components}
        return nodes['Trainer'], nodes.get('warm_start_model_resolver')

    trainer, resolver = trainer_and_resolver('--warm_start')
    assert trainer.inputs['base_model'].producer_component_id == resolver.id
    trainer, resolver = trainer_and_resolver()
    assert 'base_model' not in trainer.inputs and resolver is None
