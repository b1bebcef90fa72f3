"""SourceOptions as ExampleGen's standard CustomConfig (a google.protobuf.Struct in an Any), the
encoding FileBasedExampleGen's spec and driver carry, and back."""

from google.protobuf import json_format, struct_pb2
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from nvae_tfx.options import CODE_FINGERPRINT, SourceOptions


def pack(options: SourceOptions, code_fingerprint: str = '') -> example_gen_pb2.CustomConfig:
    struct = struct_pb2.Struct()
    struct.update(options.to_custom_config())
    if code_fingerprint:
        struct.update({CODE_FINGERPRINT: code_fingerprint})
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(struct)
    return config


def unpack(exec_properties: dict) -> SourceOptions:
    """The options from ExampleGen's execution properties (the CustomConfig as JSON)."""
    config = proto_utils.json_to_proto(
        exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY], example_gen_pb2.CustomConfig()
    )
    struct = struct_pb2.Struct()
    if not config.custom_config.Unpack(struct):
        raise ValueError('ImageExampleGen custom_config does not hold SourceOptions')
    return SourceOptions.from_custom_config(json_format.MessageToDict(struct))
