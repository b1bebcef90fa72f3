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

import os
import sys

from pipeline import cli, configs, logging_setup, preflight

# Inside a container: as many Beam workers as the container has CPUs.
DEFAULT_BEAM_ARGS = ('--direct_running_mode=multi_processing', '--direct_num_workers=0')
# The Evaluator's settings a user may change per run: {EvaluationOptions field: the job's
# parameter name, which is the flag's}.
RUNTIME_PARAMETERS = {
    'num_iw_samples': 'iw_samples',
    'fid_num_samples': 'fid_samples',
    'nll_tolerance': 'nll_tolerance',
    'fid_tolerance': 'fid_tolerance',
}
# Nodes that run the NVAE and so get the Trainer's resources.
MODEL_NODES = ('Trainer', 'GenerativeEvaluator')
# Flags naming paths that only the containers read or write, at run time.
RUNTIME_PATHS = ('pipeline_root', 'serving_dir', 'data_dir', 'inception_weights')


def parse_args(argv):
    p = cli.pipeline_parser(__doc__)
    p.add_argument(
        '--image', required=True, help='the pipeline image (Dockerfile) every component runs in'
    )
    p.add_argument(
        '--output', help='PipelineJob JSON to write; default outputs/kubeflow/<pipeline name>.json'
    )
    p.add_argument(
        '--gpus', type=int, default=1, help='accelerators for Trainer and Evaluator (0: CPU only)'
    )
    p.add_argument(
        '--gpu_type',
        default='NVIDIA_TESLA_T4',
        help='Vertex accelerator type, e.g. NVIDIA_TESLA_T4, NVIDIA_L4, NVIDIA_A100_80GB',
    )
    p.add_argument('--cpus', type=float, default=8, help='CPU limit for Trainer and Evaluator')
    p.add_argument(
        '--memory_gb', type=float, default=32, help='memory limit for Trainer and Evaluator, GB'
    )
    p.add_argument('--submit', action='store_true', help='submit the job to Vertex AI Pipelines')
    p.add_argument('--project', help='Google Cloud project (with --submit)')
    p.add_argument('--region', default='us-central1', help='Vertex AI region (with --submit)')
    p.add_argument('--service_account', help='the job runs as this account (with --submit)')
    p.add_argument('--no_cache', action='store_true', help='re-run every component')
    p.add_argument('--verbose', action='store_true', help='show all TFX/Beam/TensorFlow logs')
    p.add_argument(
        '--in_image',
        action='append',
        default=[],
        metavar='PATH',
        help='a local path given to --' + ', --'.join(RUNTIME_PATHS) + ' that exists inside the '
        'containers (baked into the image, or mounted, e.g. /gcs/BUCKET on Vertex AI); '
        'repeat for several. Other local paths are refused: containers cannot read this machine',
    )
    p.add_argument(
        '--print_config',
        action='store_true',
        help='print the resolved configuration as JSON and exit without compiling',
    )
    args = cli.parse(p, argv, DEFAULT_BEAM_ARGS)
    if not args.pipeline_root:
        p.error(
            '--pipeline_root is required (a bucket path such as gs://BUCKET/nvae, which every '
            'component can reach)'
        )
    problem = runtime_path_problem(args)
    if problem:
        p.error(problem)
    if args.submit and not args.project:
        p.error('--submit needs --project')
    return args


def runtime_path_problem(args) -> str | None:
    """What is wrong with the paths the containers will read, or None: each must be a URI or a
    path --in_image declares inside the containers, and each --in_image path one of them."""
    in_image = {os.path.normpath(path): path for path in args.in_image}
    for path in in_image.values():
        if not os.path.isabs(path):
            return f'--in_image={path}: give the absolute path inside the containers'
    for flag in RUNTIME_PATHS:
        path = getattr(args, flag)
        if not path or cli.is_uri(path) or os.path.normpath(path) in in_image:
            continue
        return (
            f"--{flag}={path} is a path on this machine, which the pipeline's containers cannot "
            f'read: give a URI such as gs://BUCKET/..., or, if the path exists inside the '
            f'containers (baked into the image or mounted), add --in_image={path}'
        )
    given = {os.path.normpath(getattr(args, f)) for f in RUNTIME_PATHS if getattr(args, f)}
    for normalized, path in in_image.items():
        if normalized not in given:
            return f'--in_image={path} is none of --' + ', --'.join(RUNTIME_PATHS)
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


def runtime_parameter_values(args) -> dict:
    """{the job's parameter: its value for this run}, resolved from preset, protocol and flags."""
    evaluation = cli.evaluation_options(args)
    return {
        parameter: getattr(evaluation, field) for field, parameter in RUNTIME_PARAMETERS.items()
    }


def serving_dir(args) -> str:
    return args.serving_dir or args.pipeline_root.rstrip('/') + '/serving'


def build_pipeline(args):
    """The pipeline as it runs in the image, with the Trainer's resources and runtime parameters."""
    from tfx import v1 as tfx

    from nvae_tfx.options import EvaluationOptions, field_type
    from pipeline import nvae_pipeline

    name = configs.pipeline_name(args.dataset)
    fields = {f.name: f for f in EvaluationOptions.evaluator_fields()}
    values = runtime_parameter_values(args)
    evaluation = cli.evaluation_options(
        args,
        **{
            field: tfx.dsl.experimental.RuntimeParameter(
                name=parameter, ptype=field_type(fields[field]), default=values[parameter]
            )
            for field, parameter in RUNTIME_PARAMETERS.items()
        },
    )
    pipeline = nvae_pipeline.create_pipeline(
        pipeline_name=name,
        pipeline_root=args.pipeline_root,
        source=cli.source_options(args),
        transform=cli.transform_options(args),
        beam_pipeline_args=args.beam_args,
        enable_cache=not args.no_cache,
        training=cli.training_options(args),
        evaluation=evaluation,
        serving_dir=serving_dir(args),
        user_code='installed',
        image_root=configs.IMAGE_PROJECT_ROOT,
        baseline_excludes_candidate=False,
    )
    resources = resource_spec(args.gpus, args.gpu_type, args.cpus, args.memory_gb)
    for component in pipeline.components:
        if component.id in MODEL_NODES:
            component.with_platform_config(resources)
    return pipeline


def compile_pipeline(args) -> str:
    from tfx import v1 as tfx

    output = os.path.abspath(
        args.output
        or os.path.join(
            configs.OUTPUT_ROOT, 'kubeflow', configs.pipeline_name(args.dataset) + '.json'
        )
    )
    os.makedirs(os.path.dirname(output), exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=args.image),
        output_dir=os.path.dirname(output),
        output_filename=os.path.basename(output),
    )
    # Explicit values: KFP v2 (schema 2.0.0) records no defaults for runtime parameters.
    runner.run(
        build_pipeline(args),
        parameter_values=runtime_parameter_values(args),
    )
    return output


def submit(job_file: str, args) -> str:
    """Submits the compiled job; returns its resource name."""
    import google.auth.exceptions
    from google.cloud import aiplatform

    try:
        aiplatform.init(project=args.project, location=args.region)
        job = aiplatform.PipelineJob(
            display_name=configs.pipeline_name(args.dataset),
            template_path=job_file,
            enable_caching=not args.no_cache,
        )
        job.submit(service_account=args.service_account)
    except google.auth.exceptions.DefaultCredentialsError as e:
        sys.exit(
            f'error: cannot submit {job_file}: no Google Cloud credentials ({e}). Run '
            '`gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS to a '
            'service-account key file; the compiled job is ready to submit later.'
        )
    return job.resource_name


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        preflight.check_settings(args)
    except ValueError as e:
        sys.exit(f'error: {e}')
    if args.print_config:
        cli.print_config(
            args,
            pipeline_root=args.pipeline_root,
            serving_dir=serving_dir(args),
            image=args.image,
            accelerators={'type': args.gpu_type, 'count': args.gpus} if args.gpus else None,
            cpus=args.cpus,
            memory_gb=args.memory_gb,
            runtime_parameters=sorted(RUNTIME_PARAMETERS.values()),
            enable_cache=not args.no_cache,
        )
        return
    # No file checks here: the data and weights are URIs or paths inside the containers
    # (runtime_path_problem), which ImageExampleGen and the Evaluator check where they run.
    logging_setup.configure(args.verbose)
    try:
        job_file = compile_pipeline(args)
    except ValueError as e:
        sys.exit(f'error: {e}')
    print(f'Compiled {configs.pipeline_name(args.dataset)} for Kubeflow Pipelines v2: {job_file}')
    if args.submit:
        print(f'Submitted: {submit(job_file, args)}')


if __name__ == '__main__':
    main()
