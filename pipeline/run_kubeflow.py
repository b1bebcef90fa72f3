"""Compiles the NVAE pipeline for Kubeflow Pipelines v2 / Vertex AI, and optionally submits it.

  python -m pipeline.run_kubeflow --pipeline_root=gs://BUCKET/nvae \\
      --image=REGION-docker.pkg.dev/PROJECT/REPO/nvae-tfx:TAG \\
      --source=idx --data_dir=gs://BUCKET/mnist --preset=paper_mnist --train_steps=100000 \\
      -- --runner=DataflowRunner --project=PROJECT --region=REGION \\
         --temp_location=gs://BUCKET/tmp --sdk_container_image=IMAGE
  ... --submit --project=PROJECT --region=REGION   # then runs it on Vertex AI Pipelines

Compiling is offline: it writes a PipelineJob JSON and uploads nothing. Every component runs in
the image built from the Dockerfile, which holds this project, so no module files are
packaged. The Trainer and the Evaluator (both run the NVAE) get the accelerator and CPU/memory
given here; data components run Beam with the args after a bare '--' (default: the
multi-processing DirectRunner inside their container). --iw_samples, --fid_samples,
--nll_tolerance and --fid_tolerance become the job's runtime parameters: their values here are
the defaults, changeable per run without recompiling.

Paths are read where the components run, not here: --pipeline_root, --serving_dir, --data_dir and
--inception_weights must be URIs the containers reach (gs://...). A local path is refused unless
--in_image names it as a path inside the containers (baked into the image, or mounted, such as
Vertex AI's Cloud Storage mount /gcs/BUCKET); it is then passed on as it is, unchecked.
"""

import dataclasses
import json
import os
import sys

from nvae_tfx.options import setting
from pipeline import cli, configs, logging_setup
from pipeline.run_spec import OutputPaths, RunSpec

# Inside a container: as many Beam workers as the container has CPUs.
DEFAULT_BEAM_ARGS = ('--direct_running_mode=multi_processing', '--direct_num_workers=0')
# The Evaluator's settings a user may change per run: the job's parameters, of their fields'
# (and flags') names.
RUNTIME_PARAMETERS = ('iw_samples', 'fid_samples', 'nll_tolerance', 'fid_tolerance')
# Nodes that run the NVAE and so get the Trainer's resources.
MODEL_NODES = ('Trainer', 'GenerativeEvaluator')


@dataclasses.dataclass(frozen=True)
class Deployment:
    """Where and how the compiled job runs."""

    image: str | None = setting(
        help='the pipeline image (Dockerfile) every component runs in', required=True
    )
    output: str | None = setting(
        help='PipelineJob JSON to write; default outputs/kubeflow/<pipeline name>.json'
    )
    gpus: int = setting(1, 'accelerators for Trainer and Evaluator (0: CPU only)')
    gpu_type: str = setting(
        'NVIDIA_TESLA_T4',
        'Vertex accelerator type, e.g. NVIDIA_TESLA_T4, NVIDIA_L4, NVIDIA_A100_80GB',
    )
    cpus: float = setting(8.0, 'CPU limit for Trainer and Evaluator')
    memory_gb: float = setting(32.0, 'memory limit for Trainer and Evaluator, GB')
    submit: bool = setting(False, 'submit the job to Vertex AI Pipelines')
    project: str | None = setting(help='Google Cloud project (with --submit)')
    region: str = setting('us-central1', 'Vertex AI region (with --submit)')
    service_account: str | None = setting(help='the job runs as this account (with --submit)')
    no_cache: bool = setting(False, 're-run every component')
    verbose: bool = setting(False, 'show all TFX/Beam/TensorFlow logs')
    in_image: list[str] = setting(
        help='a local path given to --pipeline_root, --serving_dir, --data_dir or '
        '--inception_weights that exists inside the containers (baked into the image, or '
        'mounted, e.g. /gcs/BUCKET on Vertex AI); repeat for several. Other local paths are '
        'refused: containers cannot read this machine',
        factory=list,
        parse=str,
        metavar='PATH',
    )
    print_config: bool = setting(
        False, 'print the resolved configuration as JSON and exit without compiling'
    )

    def __post_init__(self):
        if self.submit and not self.project:
            raise ValueError('--submit needs --project')
        for path in self.in_image:
            if not os.path.isabs(path):
                raise ValueError(f'--in_image={path}: give the absolute path inside the containers')


def job_paths(dataset: str, given: cli.Outputs) -> OutputPaths:
    if not given.pipeline_root:
        raise ValueError(
            '--pipeline_root is required (a bucket path such as gs://BUCKET/nvae, which every '
            'component can reach)'
        )
    root = given.pipeline_root
    return OutputPaths(pipeline_root=root, serving_dir=given.serving_dir or f'{root}/serving')


def runtime_path_problem(spec: RunSpec, in_image) -> str | None:
    """What is wrong with the paths the containers will read, or None: each must be a URI or a
    path --in_image declares inside the containers (or one below it, as the default serving
    directory below the pipeline root), and each --in_image path one of them."""
    declared = {os.path.normpath(path): path for path in in_image}

    def inside(path):
        path = os.path.normpath(path)
        return any(path == d or path.startswith(d.rstrip('/') + '/') for d in declared)

    paths = {
        'pipeline_root': spec.paths.pipeline_root,
        'serving_dir': spec.paths.serving_dir,
        'data_dir': spec.source.data_dir,
        'inception_weights': spec.evaluation.inception_weights if spec.evaluation else '',
    }
    for flag, path in paths.items():
        if not path or cli.is_uri(path) or inside(path):
            continue
        return (
            f"--{flag}={path} is a path on this machine, which the pipeline's containers cannot "
            f'read: give a URI such as gs://BUCKET/..., or, if the path exists inside the '
            f'containers (baked into the image or mounted), add --in_image={path}'
        )
    given = {os.path.normpath(p) for p in paths.values() if p}
    for normalized, path in declared.items():
        if normalized not in given:
            return f'--in_image={path} is none of --' + ', --'.join(paths)
    return None


def resource_spec(gpus: int, gpu_type: str, cpus: float, memory_gb: float):
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec(
        cpu_limit=cpus, memory_limit=memory_gb
    )
    if gpus:
        spec.accelerator.type = gpu_type
        spec.accelerator.count = gpus
    return spec


def runtime_parameter_values(spec: RunSpec) -> dict:
    """{the job's parameter: its value for this run}, resolved from preset, protocol and flags."""
    return {name: getattr(spec.evaluation, name) for name in RUNTIME_PARAMETERS}


def build_pipeline(spec: RunSpec, deployment: Deployment):
    """The pipeline as it runs in the image, with the Trainer's resources and runtime parameters."""
    from tfx import v1 as tfx

    from nvae_tfx.options import EvaluationOptions, field_type
    from pipeline import nvae_pipeline

    if spec.evaluation is not None:
        fields = {f.name: f for f in dataclasses.fields(EvaluationOptions)}
        parameters = {
            name: tfx.dsl.experimental.RuntimeParameter(
                name=name, ptype=field_type(fields[name]), default=value
            )
            for name, value in runtime_parameter_values(spec).items()
        }
        spec = dataclasses.replace(
            spec, evaluation=dataclasses.replace(spec.evaluation, **parameters)
        )
    pipeline = nvae_pipeline.create_pipeline(
        spec,
        enable_cache=not deployment.no_cache,
        user_code='installed',
        image_root=configs.IMAGE_PROJECT_ROOT,
        baseline_excludes_candidate=False,
    )
    resources = resource_spec(
        deployment.gpus, deployment.gpu_type, deployment.cpus, deployment.memory_gb
    )
    for component in pipeline.components:
        if component.id in MODEL_NODES:
            component.with_platform_config(resources)
    return pipeline


def compile_pipeline(spec: RunSpec, deployment: Deployment) -> str:
    from tfx import v1 as tfx

    output = os.path.abspath(
        deployment.output or os.path.join(configs.OUTPUT_ROOT, 'kubeflow', spec.name + '.json')
    )
    os.makedirs(os.path.dirname(output), exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=deployment.image
        ),
        output_dir=os.path.dirname(output),
        output_filename=os.path.basename(output),
    )
    # Explicit values: KFP v2 (schema 2.0.0) records no defaults for runtime parameters.
    runner.run(
        build_pipeline(spec, deployment),
        parameter_values=runtime_parameter_values(spec) if spec.evaluation else None,
    )
    return output


def submit(job_file: str, spec: RunSpec, deployment: Deployment) -> str:
    """Submits the compiled job; returns its resource name."""
    import google.auth.exceptions
    from google.cloud import aiplatform

    try:
        aiplatform.init(project=deployment.project, location=deployment.region)
        job = aiplatform.PipelineJob(
            display_name=spec.name,
            template_path=job_file,
            enable_caching=not deployment.no_cache,
        )
        job.submit(service_account=deployment.service_account)
    except google.auth.exceptions.DefaultCredentialsError as e:
        sys.exit(
            f'error: cannot submit {job_file}: no Google Cloud credentials ({e}). Run '
            '`gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS to a '
            'service-account key file; the compiled job is ready to submit later.'
        )
    return job.resource_name


def parse(argv) -> tuple[RunSpec, Deployment]:
    """The run specification and the deployment from the flags (ValueError if bad)."""
    parser = cli.parser(__doc__, cli.Outputs, Deployment)
    spec, deployment = cli.parse(
        parser, argv, job_paths, cli.Outputs, Deployment, DEFAULT_BEAM_ARGS
    )
    problem = runtime_path_problem(spec, deployment.in_image)
    if problem:
        raise ValueError(problem)
    return spec, deployment


def main(argv=None):
    try:
        spec, deployment = parse(sys.argv[1:] if argv is None else argv)
    except ValueError as e:
        sys.exit(f'error: {e}')
    if deployment.print_config:
        accelerators = {'type': deployment.gpu_type, 'count': deployment.gpus}
        runner = dict(
            image=deployment.image,
            accelerators=accelerators if deployment.gpus else None,
            cpus=deployment.cpus,
            memory_gb=deployment.memory_gb,
            runtime_parameters=sorted(RUNTIME_PARAMETERS),
            enable_cache=not deployment.no_cache,
        )
        print(json.dumps(spec.as_dict(**runner), indent=1))
        return
    # No file checks here: the data and weights are URIs or paths inside the containers
    # (runtime_path_problem), which ImageExampleGen and the Evaluator check where they run.
    logging_setup.configure(deployment.verbose)
    job_file = compile_pipeline(spec, deployment)
    print(f'Compiled {spec.name} for Kubeflow Pipelines v2: {job_file}')
    if deployment.submit:
        print(f'Submitted: {submit(job_file, spec, deployment)}')


if __name__ == '__main__':
    main()
