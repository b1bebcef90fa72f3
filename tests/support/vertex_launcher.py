"""Runs a compiled Kubeflow Pipelines v2 PipelineJob (the JSON run_kubeflow.py writes) the way
Vertex AI Pipelines runs it, on this machine, without a cluster.

What Vertex does, and how it is done here:

* The DAG (pipelineSpec.root.dag) is walked in dependency order, one task at a time.
* A container task (deploymentSpec executor with ``container``) gets an ExecutorInput: its input
  artifacts (name, type, uri, metadata) taken from the producing tasks' outputs, its parameters
  (constants, the job's runtime parameters, upstream output parameters), output artifacts with
  URIs under the pipeline root,
  ``{root}/{project number}/{job id}/{task}_{task id}/{output key}``, and the file it writes its
  ExecutorOutput to in the same directory. The container's command and args, with the
  ``{{$}}``-style placeholders replaced, run in a subprocess: TFX's own Kubeflow V2 entrypoints
  (kubeflow_v2_run_executor, the file-based ExampleGen driver), from a copy of the project laid
  out as the Dockerfile lays out the image (Image), with this machine's .venv interpreter
  standing in for the image's Python. The ExecutorOutput's artifact metadata and output
  parameters are carried downstream.
* A container's ``lifecycle.preCacheCheck`` (the ExampleGen driver) runs first with the same
  ExecutorInput; the parameters and output-artifact metadata it writes update the task before
  its executor runs (and the executor finds the driver's file at its output path, as on Vertex).
* Importer and resolver tasks are Vertex system tasks, not containers: an importer registers an
  artifact for a URI; a resolver answers each output's filter query (``schema_title="tfx.Model"
  AND state=LIVE AND name="{{$.inputs.artifacts['input'].metadata['current_model_id']}}"``)
  from the ML Metadata store kept here, in which every artifact is registered under its
  Vertex-style resource name with its metadata as custom properties, within the pipeline's
  context; the latest match wins.
* ``triggerPolicy.condition`` (CEL, as TFX compiles tfx.dsl.Cond) is evaluated on the task's
  inputs; a false condition skips the task, and tasks that consume a skipped task's outputs are
  skipped too.
* Caching is not emulated: a run is what ``PipelineJob(enable_caching=False)`` gives, every task
  executes. Resource requests (CPU, memory, accelerators) are recorded in the job but not
  enforced; everything runs on this machine's CPU.
"""

import dataclasses
import datetime
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from tests.support import cel

PROJECT_NUMBER = '0'
_PLACEHOLDER = re.compile(r'\{\{\$(?P<path>[^}]*)\}\}')


class TaskFailed(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# The image: the project copied as the Dockerfile copies it.


class Image:
    """The pipeline image's file system, built from the Dockerfile into ``directory``.

    FROM and package installation (RUN ... pip install) are what this machine's .venv stands in
    for; COPY, ENV, WORKDIR and the other RUN instructions are carried out, with the image's
    project root (WORKDIR) mapped to ``directory``. Any other instruction is refused, so the
    copy cannot silently differ from the image. COPY reads only the build context Docker sends:
    the files .dockerignore leaves in, matched by the Docker SDK's own rules.
    """

    def __init__(self, context: str, directory: str, dockerfile: str = 'Dockerfile'):
        self.context = os.path.abspath(context)
        self.directory = os.path.abspath(directory)
        self.instructions = _dockerfile_instructions(os.path.join(self.context, dockerfile))
        workdirs = [arg for op, arg in self.instructions if op == 'WORKDIR']
        if len(workdirs) != 1:
            raise ValueError('the Dockerfile must set exactly one WORKDIR (the project root)')
        self.root = workdirs[0]
        self.env = {}
        self.copied = []
        self.context_files = build_context(self.context, dockerfile)

    def build(self) -> 'Image':
        if os.path.exists(self.directory):
            shutil.rmtree(self.directory)
        os.makedirs(self.directory)
        python_dir = os.path.join(self.directory + '.python')
        os.makedirs(python_dir, exist_ok=True)
        with open(os.path.join(python_dir, 'sitecustomize.py'), 'w') as f:
            f.write(_SITECUSTOMIZE)
        self._python_dir = python_dir
        for op, arg in self.instructions:
            if op == 'FROM':
                continue
            if op == 'COPY':
                self._copy(arg)
            elif op == 'ENV':
                for name, value in _env_assignments(arg).items():
                    self.env[name] = self.map_paths(value)
            elif op == 'WORKDIR':
                os.makedirs(self.map_paths(arg), exist_ok=True)
            elif op == 'RUN':
                if re.search(r'\bpip install\b', arg):
                    continue  # the .venv holds requirements.lock
                self._run(arg)
            else:
                raise ValueError(f'Dockerfile: {op} is not supported by the local image')
        return self

    def _copy(self, arg):
        parts = shlex.split(arg)
        if len(parts) != 2 or parts[0].startswith('--'):
            raise ValueError(f'Dockerfile: COPY {arg!r}: expected COPY SOURCE DESTINATION')
        source, destination = parts
        if not (destination == self.root or destination.startswith(self.root + '/')):
            raise ValueError(f'Dockerfile: COPY {arg!r} writes outside {self.root}')
        source = os.path.normpath(source)
        if source not in self.context_files:
            raise ValueError(
                f'Dockerfile: COPY {source}: not in the build context '
                f'({os.path.join(self.context, ".dockerignore")} leaves it out)'
            )
        target = self.map_paths(destination)
        for path in sorted(self.context_files):
            inside = path == source or path.startswith(source + '/')
            if inside and os.path.isfile(os.path.join(self.context, path)):
                copy = (
                    os.path.join(target, os.path.relpath(path, source))
                    if path != source
                    else target
                )
                os.makedirs(os.path.dirname(copy), exist_ok=True)
                shutil.copy2(os.path.join(self.context, path), copy)
        self.copied.append(source)

    def _run(self, command):
        result = subprocess.run(
            ['bash', '-c', self.map_paths(command)],
            cwd=self.directory,
            env=self.environment(),
            capture_output=True,
            text=True,
        )
        if result.returncode:
            raise RuntimeError(
                f'Dockerfile: RUN {command!r} failed ({result.returncode}):\n{result.stderr}'
            )

    def map_paths(self, text: str) -> str:
        """Paths inside the image (under its project root) as paths of the local copy."""
        return re.sub(
            r'(?<![\w.~/:-])' + re.escape(self.root) + r'(?=/|$|[^\w.-])',
            self.directory.replace('\\', '\\\\'),
            text,
        )

    def environment(self, extra: dict | None = None) -> dict:
        """A container's environment: the image's ENV over a minimal base, this machine's
        interpreter first on PATH, and ``extra``."""
        env = {
            'PATH': os.path.dirname(sys.executable) + ':/usr/local/bin:/usr/bin:/bin',
            'HOME': os.environ.get('HOME', '/root'),
            'LANG': 'C.UTF-8',
            'TMPDIR': os.environ.get('TMPDIR', '/tmp'),
        }
        env.update(self.env)
        env['PYTHONPATH'] = ':'.join(filter(None, [self.env.get('PYTHONPATH'), self._python_dir]))
        env.update(extra or {})
        return env


def build_context(context: str, dockerfile: str = 'Dockerfile') -> set[str]:
    """The paths (files and directories, relative to ``context``) that ``docker build`` sends:
    everything .dockerignore does not exclude, by the Docker SDK's implementation of its rules."""
    from docker.utils import build

    ignore = os.path.join(context, '.dockerignore')
    patterns = []
    if os.path.exists(ignore):
        with open(ignore) as f:
            patterns = [line.strip() for line in f if line.strip() and not line.startswith('#')]
    return {os.path.normpath(p) for p in build.exclude_paths(context, patterns, dockerfile)}


# The .venv has this checkout installed in editable mode (import hooks that find its packages
# here); the image has only what the Dockerfile copied, so those hooks are removed.
_SITECUSTOMIZE = """import sys

sys.meta_path[:] = [f for f in sys.meta_path if not f.__module__.startswith('__editable__')]
sys.path_hooks[:] = [
    h for h in sys.path_hooks if not getattr(h, '__module__', '').startswith('__editable__')
]
sys.path[:] = [p for p in sys.path if '__editable__' not in p]
"""


def _dockerfile_instructions(path):
    """[(INSTRUCTION, argument)] with continuation lines joined and comments dropped."""
    instructions, current = [], ''
    with open(path) as f:
        for line in f:
            stripped = line.strip()
            if not current and (not stripped or stripped.startswith('#')):
                continue
            if stripped.startswith('#'):
                continue
            if stripped.endswith('\\'):
                current += stripped[:-1] + ' '
                continue
            current += stripped
            op, _, arg = current.partition(' ')
            instructions.append((op.upper(), arg.strip()))
            current = ''
    return instructions


def _env_assignments(arg):
    return dict(item.split('=', 1) for item in shlex.split(arg))


# ---------------------------------------------------------------------------------------------
# ML Metadata, as Vertex ML Metadata holds what the resolver queries.


class MetadataStore:
    """Artifacts under Vertex-style resource names, their metadata as custom properties, in a
    context per pipeline and per run; executions with their input and output events."""

    def __init__(self, path: str, project_number: str = PROJECT_NUMBER):
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = path
        config.sqlite.connection_mode = (
            metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        )
        self.store = mlmd.MetadataStore(config)
        self.prefix = f'projects/{project_number}/locations/local/metadataStores/default'

    def _type_id(self, kind, name):
        put, proto = {
            'artifact': (self.store.put_artifact_type, metadata_store_pb2.ArtifactType),
            'execution': (self.store.put_execution_type, metadata_store_pb2.ExecutionType),
            'context': (self.store.put_context_type, metadata_store_pb2.ContextType),
        }[kind]
        return put(proto(name=name))

    def context(self, type_name, name):
        existing = self.store.get_context_by_type_and_name(type_name, name)
        if existing:
            return existing.id
        context = metadata_store_pb2.Context(type_id=self._type_id('context', type_name), name=name)
        return self.store.put_contexts([context])[0]

    def create_artifact(self, schema_title, uri, metadata, state):
        # Vertex names artifacts by a random 64-bit number; MLMD keeps a name once set.
        artifact = metadata_store_pb2.Artifact(
            type_id=self._type_id('artifact', schema_title),
            uri=uri,
            state=state,
            name=f'{self.prefix}/artifacts/{random.getrandbits(63)}',
        )
        _set_custom_properties(artifact, metadata)
        self.store.put_artifacts([artifact])
        return artifact.name

    def update_artifact(self, name, uri, metadata, state):
        artifact = self._by_name(name)
        artifact.uri = uri
        artifact.state = state
        artifact.ClearField('custom_properties')
        _set_custom_properties(artifact, metadata)
        self.store.put_artifacts([artifact])

    def _by_name(self, name):
        [artifact] = self.store.get_artifacts(
            list_options=mlmd.ListOptions(filter_query=f'name = "{name}"')
        )
        return artifact

    def record_execution(self, type_name, task, contexts, inputs, outputs, state):
        """inputs/outputs: {key: [artifact name]}; the execution and its artifacts join the
        contexts (ids)."""
        execution = metadata_store_pb2.Execution(
            type_id=self._type_id('execution', type_name), last_known_state=state
        )
        execution.custom_properties['task_name'].string_value = task
        artifact_and_events = []
        for event_type, artifacts in (
            (metadata_store_pb2.Event.INPUT, inputs),
            (metadata_store_pb2.Event.OUTPUT, outputs),
        ):
            for key, names in artifacts.items():
                for index, name in enumerate(names):
                    event = metadata_store_pb2.Event(type=event_type)
                    event.path.steps.add().key = key
                    event.path.steps.add().index = index
                    artifact_and_events.append((self._by_name(name), event))
        self.store.put_execution(
            execution, artifact_and_events, self.store.get_contexts_by_id(contexts)
        )

    def query(self, vertex_filter: str, pipeline_context: str):
        """The latest LIVE artifact matching a Vertex ML Metadata filter within the pipeline's
        context, as (name, schema title, uri, metadata), or None."""
        mlmd_filter = ' AND '.join(
            [_mlmd_clause(c) for c in _filter_clauses(vertex_filter)]
            + [
                'contexts_p.type = "system.Pipeline"',
                f'contexts_p.name = "{pipeline_context}"',
            ]
        )
        artifacts = self.store.get_artifacts(
            list_options=mlmd.ListOptions(
                filter_query=mlmd_filter,
                order_by=mlmd.OrderByField.ID,
                is_asc=False,
                limit=1,
            )
        )
        if not artifacts:
            return None
        [artifact] = artifacts
        [artifact_type] = self.store.get_artifact_types_by_id([artifact.type_id])
        return artifact.name, artifact_type.name, artifact.uri, _custom_properties(artifact)


def _set_custom_properties(artifact, metadata):
    for key, value in metadata.items():
        slot = artifact.custom_properties[key]
        if isinstance(value, bool):
            slot.bool_value = value
        elif isinstance(value, (int, float)):
            slot.double_value = float(value)
        elif isinstance(value, str):
            slot.string_value = value
        else:
            slot.struct_value.update({'value': value})


def _custom_properties(artifact):
    result = {}
    for key, value in artifact.custom_properties.items():
        kind = value.WhichOneof('value')
        if kind == 'struct_value':
            result[key] = json.loads(json.dumps(dict(value.struct_value)))['value']
        else:
            result[key] = getattr(value, kind)
    return result


_CLAUSE = re.compile(r'\s*(?P<field>[\w.]+)\s*=\s*(?P<value>"(?:[^"\\]|\\.)*"|[\w.+-]+)\s*')


def _filter_clauses(text):
    """'a="x" AND b=1' -> [('a', '"x"'), ('b', '1')]; anything else is refused."""
    clauses = []
    for part in re.split(r'\s+AND\s+', text.strip()):
        match = _CLAUSE.fullmatch(part)
        if not match:
            raise NotImplementedError(f'resolver filter clause not supported: {part!r}')
        clauses.append((match['field'], match['value']))
    return clauses


def _mlmd_clause(clause):
    field, value = clause
    if field == 'schema_title':
        return f'type = {value}'
    if field == 'state':
        return f'state = {value}'
    if field in ('name', 'uri'):
        return f'{field} = {value}'
    metadata = re.fullmatch(r'metadata\.(?P<key>\w+)\.(?P<kind>number_value|string_value)', field)
    if metadata:
        kind = 'double_value' if metadata['kind'] == 'number_value' else 'string_value'
        return f'custom_properties.{metadata["key"]}.{kind} = {value}'
    raise NotImplementedError(f'resolver filter field not supported: {field!r}')


# ---------------------------------------------------------------------------------------------
# The launcher.


@dataclasses.dataclass
class Artifact:
    name: str
    type: dict  # the artifactType of the component's definition (schemaTitle or instanceSchema)
    uri: str
    metadata: dict

    @property
    def schema_title(self):
        return _schema_title(self.type)

    def runtime(self):
        return {'name': self.name, 'type': self.type, 'uri': self.uri, 'metadata': self.metadata}


@dataclasses.dataclass
class TaskRun:
    name: str
    state: str  # SUCCEEDED or SKIPPED
    outputs: dict  # {key: [Artifact]}
    output_parameters: dict
    log: str | None = None
    seconds: float = 0.0


@dataclasses.dataclass
class PipelineRun:
    job_id: str
    tasks: dict  # {task name: TaskRun}

    def output(self, task, key) -> Artifact:
        [artifact] = self.tasks[task].outputs[key]
        return artifact


class VertexLauncher:
    """Runs compiled jobs against one image copy and one metadata store (several runs of a
    pipeline see each other's artifacts, as on Vertex)."""

    def __init__(self, image: Image, workspace: str, env: dict | None = None, timeout=3600):
        self.image = image
        self.workspace = os.path.abspath(workspace)
        os.makedirs(self.workspace, exist_ok=True)
        self.metadata = MetadataStore(os.path.join(self.workspace, 'metadata.sqlite'))
        self.env = dict(env or {})
        self.timeout = timeout
        self.running = {}  # {task: its container process}, while it runs

    def kill_running(self, task: str) -> None:
        """Kills a task's container as a preempted or cancelled Vertex job's is killed."""
        os.killpg(self.running[task].pid, signal.SIGKILL)

    def run(self, job, parameter_values: dict | None = None, log=print) -> PipelineRun:
        if isinstance(job, str):
            with open(job) as f:
                job = json.load(f)
        spec = job['pipelineSpec']
        if spec.get('schemaVersion') not in ('2.0.0', '2.1.0'):
            raise NotImplementedError(f'pipeline spec schema {spec.get("schemaVersion")}')
        pipeline_name = spec['pipelineInfo']['name']
        job_id = self._job_id(pipeline_name)
        root = job['runtimeConfig']['gcsOutputDirectory'].rstrip('/')
        job_parameters = _job_parameters(spec['root'], job['runtimeConfig'], parameter_values)
        contexts = [
            self.metadata.context('system.Pipeline', pipeline_name),
            self.metadata.context('system.PipelineRun', job_id),
        ]
        run = _Run(self, spec, job_id, pipeline_name, root, job_parameters, contexts, log)
        for name in _topological_order(spec['root']['dag']['tasks']):
            run.execute(name)
        return PipelineRun(job_id, run.tasks)

    def _job_id(self, pipeline_name):
        stamp = datetime.datetime.now().strftime('%Y%m%d%H%M%S')
        job_id, n = f'{pipeline_name}-{stamp}', 1
        while os.path.exists(os.path.join(self.workspace, job_id)):
            n += 1
            job_id = f'{pipeline_name}-{stamp}-{n}'
        os.makedirs(os.path.join(self.workspace, job_id))
        return job_id


class _Run:
    def __init__(self, launcher, spec, job_id, pipeline_name, root, parameters, contexts, log):
        self.launcher = launcher
        self.spec = spec
        self.job_id = job_id
        self.pipeline_name = pipeline_name
        self.root = root
        self.parameters = parameters
        self.contexts = contexts
        self.log = log
        self.tasks = {}
        self.local_dir = os.path.join(launcher.workspace, job_id)

    def execute(self, name):
        task = self.spec['root']['dag']['tasks'][name]
        component = self.spec['components'][task['componentRef']['name']]
        if 'dag' in component:
            raise NotImplementedError(f'{name}: nested DAGs are not supported')
        executor = self.spec['deploymentSpec']['executors'][component['executorLabel']]
        inputs, skipped_by = self._input_artifacts(task, component)
        if skipped_by:
            return self._skip(name, f'its input comes from skipped task {skipped_by}')
        parameters = self._input_parameters(task, component)
        condition = task.get('triggerPolicy', {}).get('condition')
        if condition:
            context = {
                'inputs': {
                    'artifacts': {
                        k: {'artifacts': [a.runtime() for a in v]} for k, v in inputs.items()
                    },
                    'parameter_values': parameters,
                }
            }
            if not cel.evaluate(condition, context):
                return self._skip(name, f'condition {condition} is false')
        strategy = task.get('triggerPolicy', {}).get('strategy')
        if strategy not in (None, 'ALL_UPSTREAM_TASKS_SUCCEEDED'):
            raise NotImplementedError(f'{name}: trigger strategy {strategy}')
        start = time.monotonic()
        if 'container' in executor:
            outputs, output_parameters, log = self._container(
                name, task, component, executor['container'], inputs, parameters
            )
            execution_type = 'system.ContainerExecution'
        elif 'importer' in executor:
            outputs, output_parameters, log = (
                self._importer(component, executor['importer'], parameters),
                {},
                None,
            )
            execution_type = 'system.ImporterExecution'
        elif 'resolver' in executor:
            outputs, output_parameters, log = (
                self._resolver(component, executor['resolver'], inputs),
                {},
                None,
            )
            execution_type = 'system.ResolverExecution'
        else:
            raise NotImplementedError(f'{name}: executor {sorted(executor)}')
        self.launcher.metadata.record_execution(
            execution_type,
            name,
            self.contexts,
            {k: [a.name for a in v] for k, v in inputs.items()},
            {k: [a.name for a in v] for k, v in outputs.items()},
            metadata_store_pb2.Execution.COMPLETE,
        )
        seconds = time.monotonic() - start
        self.tasks[name] = TaskRun(name, 'SUCCEEDED', outputs, output_parameters, log, seconds)
        self.log(f'{self.job_id} {name}: succeeded in {seconds:.0f} s')

    def _skip(self, name, why):
        self.tasks[name] = TaskRun(name, 'SKIPPED', {}, {})
        self.log(f'{self.job_id} {name}: skipped ({why})')

    # Inputs ----------------------------------------------------------------------------------

    def _input_artifacts(self, task, component):
        """({key: [Artifact]} typed as the component declares them, or the skipped producer)."""
        result = {}
        definitions = component.get('inputDefinitions', {}).get('artifacts', {})
        for key, spec in task.get('inputs', {}).get('artifacts', {}).items():
            source = spec.get('taskOutputArtifact')
            if source is None:
                raise NotImplementedError(f'input artifact {key}: {sorted(spec)}')
            producer = self.tasks[source['producerTask']]
            if producer.state == 'SKIPPED':
                return None, source['producerTask']
            result[key] = [
                dataclasses.replace(a, type=definitions[key]['artifactType'])
                for a in producer.outputs.get(source['outputArtifactKey'], [])
            ]
        return result, None

    def _input_parameters(self, task, component):
        """{name: plain value} of every parameter the task sets."""
        result = {}
        for name, spec in task.get('inputs', {}).get('parameters', {}).items():
            if 'runtimeValue' in spec:
                result[name] = _plain_value(spec['runtimeValue'])
            elif 'componentInputParameter' in spec:
                result[name] = self.parameters[spec['componentInputParameter']]
            elif 'taskOutputParameter' in spec:
                source = spec['taskOutputParameter']
                producer = source['producerTask'].removesuffix('_task')
                result[name] = self.tasks[producer].output_parameters[source['outputParameterKey']]
            else:
                raise NotImplementedError(f'input parameter {name}: {sorted(spec)}')
        return result

    # Container tasks -------------------------------------------------------------------------

    def _container(self, name, task, component, container, inputs, parameters):
        task_dir = f'{self.root}/{PROJECT_NUMBER}/{self.job_id}/{name}_{random.getrandbits(63)}'
        output_file = f'{task_dir}/executor_output.json'
        outputs = {}
        for key, spec in component.get('outputDefinitions', {}).get('artifacts', {}).items():
            uri = f'{task_dir}/{key}'
            metadata = dict(spec.get('metadata', {}))
            artifact_name = self.launcher.metadata.create_artifact(
                _schema_title(spec['artifactType']),
                uri,
                metadata,
                metadata_store_pb2.Artifact.PENDING,
            )
            outputs[key] = [Artifact(artifact_name, spec['artifactType'], uri, metadata)]
        parameter_types = {
            k: v.get('parameterType') or v.get('type')
            for k, v in component.get('inputDefinitions', {}).get('parameters', {}).items()
        }
        output_parameters = {
            key: {'outputFile': f'{task_dir}/parameters/{key}'}
            for key in component.get('outputDefinitions', {}).get('parameters', {})
        }
        log_path = os.path.join(self.local_dir, f'{name}.log')

        def executor_input():
            return {
                'inputs': {
                    'artifacts': {
                        k: {'artifacts': [a.runtime() for a in v]} for k, v in inputs.items()
                    },
                    'parameters': {
                        k: _legacy_value(v, parameter_types.get(k)) for k, v in parameters.items()
                    },
                    'parameterValues': parameters,
                },
                'outputs': {
                    'artifacts': {
                        k: {'artifacts': [a.runtime() for a in v]} for k, v in outputs.items()
                    },
                    'parameters': output_parameters,
                    'outputFile': output_file,
                },
            }

        hook = container.get('lifecycle', {}).get('preCacheCheck')
        if hook:
            self._exec(
                name, 'driver', hook['command'], hook.get('args', []), executor_input(), log_path
            )
            produced = self._executor_output(output_file, name)
            if produced is None:
                raise TaskFailed(f'{name}: the driver wrote no {output_file}')
            parameters.update(produced.get('parameterValues', {}))
            for key, value in produced.get('parameters', {}).items():
                parameters[key] = _plain_value(value)
            self._merge_artifacts(outputs, produced)
        self._exec(
            name,
            'executor',
            container['command'],
            container.get('args', []),
            executor_input(),
            log_path,
        )
        produced = self._executor_output(output_file, name) or {}
        self._merge_artifacts(outputs, produced)
        values = {
            **{k: _plain_value(v) for k, v in produced.get('parameters', {}).items()},
            **produced.get('parameterValues', {}),
        }
        for artifacts in outputs.values():
            for artifact in artifacts:
                self.launcher.metadata.update_artifact(
                    artifact.name,
                    artifact.uri,
                    artifact.metadata,
                    metadata_store_pb2.Artifact.LIVE,
                )
        return outputs, values, log_path

    def _exec(self, name, role, command, args, executor_input, log_path):
        argv = [self._substitute(a, executor_input) for a in [*command, *args]]
        if argv and argv[0] in ('python', 'python3'):
            argv[0] = sys.executable
        image = self.launcher.image
        argv = [image.map_paths(a) for a in argv]
        with open(os.path.join(self.local_dir, f'{name}.{role}_input.json'), 'w') as f:
            json.dump(executor_input, f, indent=1)
        self.log(f'{self.job_id} {name}: {role} running')
        with open(log_path, 'a') as log:
            log.write(f'$ {shlex.join(argv)[:2000]}\n')
            log.flush()
            process = subprocess.Popen(
                argv,
                cwd=image.map_paths(image.root),
                env=image.environment(self.launcher.env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a group of its own, which kill_running ends
            )
            self.launcher.running[name] = process
            try:
                returncode = process.wait(timeout=self.launcher.timeout)
            except subprocess.TimeoutExpired as e:
                process.kill()
                raise TaskFailed(f'{name}: {role} ran past {e.timeout} s; log: {log_path}') from e
            finally:
                del self.launcher.running[name]
        if returncode:
            with open(log_path) as f:
                tail = ''.join(f.readlines()[-40:])
            raise TaskFailed(f'{name}: {role} exited with {returncode}; log: {log_path}\n{tail}')

    def _substitute(self, arg, executor_input):
        image = self.launcher.image

        def value(match):
            path = match['path']
            if path == '':
                return image.map_paths(json.dumps(executor_input))
            found = re.fullmatch(r"\.inputs\.parameters\['([^']+)'\]", path)
            if found:
                parameter = executor_input['inputs']['parameterValues'][found[1]]
                return parameter if isinstance(parameter, str) else json.dumps(parameter)
            found = re.fullmatch(r"\.(inputs|outputs)\.artifacts\['([^']+)'\]\.uri", path)
            if found:
                [artifact] = executor_input[found[1]]['artifacts'][found[2]]['artifacts']
                return artifact['uri']
            raise NotImplementedError(f'placeholder {match[0]} is not supported')

        return _PLACEHOLDER.sub(value, arg)

    def _executor_output(self, path, name):
        import tensorflow as tf  # the output may be on any file system TensorFlow reads

        if not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path) as f:
            text = f.read()
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise TaskFailed(f'{name}: {path} is not JSON: {e}') from e

    @staticmethod
    def _merge_artifacts(outputs, produced):
        """Vertex keeps what the container reports of its output artifacts: metadata and uri."""
        for key, listed in produced.get('artifacts', {}).items():
            if key not in outputs:
                raise TaskFailed(f'executor output names an undeclared artifact {key!r}')
            for artifact, reported in zip(outputs[key], listed.get('artifacts', []), strict=True):
                artifact.metadata.update(reported.get('metadata', {}))
                artifact.uri = reported.get('uri') or artifact.uri

    # System tasks ----------------------------------------------------------------------------

    def _importer(self, component, importer, parameters):
        [(key, spec)] = component['outputDefinitions']['artifacts'].items()
        source = importer['artifactUri']
        if 'runtimeParameter' in source:
            uri = parameters[source['runtimeParameter']]
        else:
            uri = _plain_value(source)
        metadata = dict(importer.get('metadata', {}))
        title = _schema_title(importer['typeSchema'])
        # reimport=False: an artifact already registered for the URI is used again.
        existing = None
        if not importer.get('reimport'):
            existing = self.launcher.metadata.query(
                f'schema_title="{title}" AND state=LIVE AND uri="{uri}"', self.pipeline_name
            )
        if existing:
            name, _, uri, metadata = existing
        else:
            name = self.launcher.metadata.create_artifact(
                title, uri, metadata, metadata_store_pb2.Artifact.LIVE
            )
        return {key: [Artifact(name, spec['artifactType'], uri, metadata)]}

    def _resolver(self, component, resolver, inputs):
        outputs = {}
        definitions = component['outputDefinitions']['artifacts']
        for key, query in resolver['outputArtifactQueries'].items():
            vertex_filter = self._resolve_filter(query['filter'], inputs)
            found = None
            if vertex_filter is not None:
                found = self.launcher.metadata.query(vertex_filter, self.pipeline_name)
            outputs[key] = []
            if found:
                name, _, uri, metadata = found
                outputs[key] = [Artifact(name, definitions[key]['artifactType'], uri, metadata)]
        return outputs

    @staticmethod
    def _resolve_filter(text, inputs):
        """The filter with its input placeholders filled in; None where an input it refers to
        resolved to nothing (so nothing can match)."""
        missing = False

        def value(match):
            nonlocal missing
            found = re.fullmatch(
                r"\.inputs\.artifacts\['([^']+)'\]\.metadata\['([^']+)'\]", match['path']
            )
            if not found:
                raise NotImplementedError(f'resolver placeholder {match[0]} is not supported')
            artifacts = inputs.get(found[1], [])
            if not artifacts or found[2] not in artifacts[0].metadata:
                missing = True
                return ''
            return str(artifacts[0].metadata[found[2]])

        text = _PLACEHOLDER.sub(value, text)
        return None if missing else text


def _schema_title(artifact_type):
    if 'schemaTitle' in artifact_type:
        return artifact_type['schemaTitle']
    import yaml

    return yaml.safe_load(artifact_type['instanceSchema'])['title']


def _plain_value(value):
    """A pipeline_spec Value / ValueOrRuntimeParameter (JSON) as a plain Python value."""
    if 'constantValue' in value:
        value = value['constantValue']
    elif 'constant' in value:
        return value['constant']
    if 'intValue' in value:
        return int(value['intValue'])
    if 'doubleValue' in value:
        return float(value['doubleValue'])
    if 'stringValue' in value:
        return value['stringValue']
    raise NotImplementedError(f'value {value}')


def _legacy_value(value, declared_type):
    """A plain value as the (schema 2.0.0) pipeline_spec Value its declared type asks for."""
    if declared_type in ('INT', 'NUMBER_INTEGER') or (
        declared_type is None and isinstance(value, (int, float)) and float(value).is_integer()
    ):
        return {'intValue': str(int(value))}
    if declared_type in ('DOUBLE', 'NUMBER_DOUBLE') or isinstance(value, float):
        return {'doubleValue': float(value)}
    return {'stringValue': value if isinstance(value, str) else json.dumps(value)}


def _job_parameters(root, runtime_config, overrides):
    result = {}
    for name, value in runtime_config.get('parameters', {}).items():
        result[name] = _plain_value(value)
    result.update(runtime_config.get('parameterValues', {}))
    for name, value in (overrides or {}).items():
        if name not in root.get('inputDefinitions', {}).get('parameters', {}):
            raise ValueError(f'the job has no runtime parameter {name!r}')
        result[name] = value
    return result


def _topological_order(tasks):
    """Task names, each after the tasks it depends on (dependentTasks and input producers)."""

    def upstream(task):
        names = set(task.get('dependentTasks', []))
        inputs = task.get('inputs', {})
        for spec in inputs.get('artifacts', {}).values():
            names.add(spec['taskOutputArtifact']['producerTask'])
        for spec in inputs.get('parameters', {}).values():
            if 'taskOutputParameter' in spec:
                names.add(spec['taskOutputParameter']['producerTask'].removesuffix('_task'))
        return names

    order, done = [], set()
    pending = dict(sorted(tasks.items()))
    while pending:
        ready = [n for n, t in pending.items() if upstream(t) <= done]
        if not ready:
            raise ValueError(f'the DAG has a cycle or unknown tasks among {sorted(pending)}')
        for name in ready:
            order.append(name)
            done.add(name)
            del pending[name]
    return order
