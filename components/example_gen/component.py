"""ImageExampleGen: one ExampleGen for every image source the pipeline supports."""

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from components.example_gen import custom_config, driver, executor
from nvae_tfx.data import sources
from nvae_tfx.options import SourceOptions


class ImageExampleGen(FileBasedExampleGen):
    """FileBasedExampleGen whose executor reads MNIST (embedded, IDX, TFDS) or CelebA (dir, TFDS).

    Output splits: 'train' and 'eval' (plus 'test' for CelebA); see sources.input_patterns.
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = driver.Driver

    def __init__(
        self, options: SourceOptions, input_base: str | None = None, code_fingerprint: str = ''
    ):
        """input_base: where the executor's machine sees the source, when not where it is here
        (a container image). The runners check the source before they build the pipeline
        (pipeline/preflight.py), the executor again where it reads it. code_fingerprint: the
        hash of the code the executor runs, in the cache key."""
        super().__init__(
            input_base=input_base or sources.input_base(options),
            input_config=example_gen_pb2.Input(
                splits=[
                    example_gen_pb2.Input.Split(name=name, pattern=pattern)
                    for name, pattern in sources.input_patterns(options).items()
                ]
            ),
            custom_config=custom_config.pack(options, code_fingerprint),
        )
