"""What an ImageExampleGen reads: dataset, source, data directory and bad-record policy.

The options travel to the executor inside ExampleGen's standard CustomConfig proto (as a
google.protobuf.Struct), so the component keeps FileBasedExampleGen's spec and driver, and
runs unchanged on every orchestrator.
"""

import dataclasses

from google.protobuf import json_format, struct_pb2
from tfx.proto import example_gen_pb2

from nvae_tfx import datasets

SOURCES = {'mnist': ('embedded', 'idx', 'tfds'), 'celeba': ('dir', 'tfds')}
TFDS_NAMES = {'mnist': 'mnist', 'celeba': 'celeb_a'}
ON_CORRUPT = ('fail', 'skip')


@dataclasses.dataclass(frozen=True)
class SourceOptions:
    dataset: str = 'mnist'
    source: str = 'embedded'
    data_dir: str | None = None
    on_corrupt: str = 'fail'
    # (height, width, channels) every CelebA image must have.
    celeba_shape: tuple[int, int, int] = datasets.CELEBA_SHAPE

    def __post_init__(self):
        if self.dataset not in datasets.DATASETS:
            raise ValueError(f'dataset must be one of {datasets.DATASETS}, got {self.dataset!r}')
        if self.source not in SOURCES[self.dataset]:
            raise ValueError(
                f'source for {self.dataset} must be one of {SOURCES[self.dataset]}, '
                f'got {self.source!r}'
            )
        if self.source != 'embedded' and not self.data_dir:
            raise ValueError(f'source {self.source!r} reads from a directory: give data_dir')
        if self.on_corrupt not in ON_CORRUPT:
            raise ValueError(f'on_corrupt must be one of {ON_CORRUPT}, got {self.on_corrupt!r}')
        object.__setattr__(self, 'celeba_shape', tuple(int(v) for v in self.celeba_shape))

    def to_custom_config(self) -> example_gen_pb2.CustomConfig:
        struct = struct_pb2.Struct()
        struct.update(
            {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()
                if v is not None
            }
        )
        config = example_gen_pb2.CustomConfig()
        config.custom_config.Pack(struct)
        return config

    @classmethod
    def from_custom_config(cls, config: example_gen_pb2.CustomConfig) -> 'SourceOptions':
        struct = struct_pb2.Struct()
        if not config.custom_config.Unpack(struct):
            raise ValueError('ImageExampleGen custom_config does not hold SourceOptions')
        return cls(**json_format.MessageToDict(struct))
