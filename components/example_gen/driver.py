"""ImageExampleGen's driver: ExampleGen's input fingerprint, plus, for a CelebA directory or a
face folder, the fingerprint of its image files (nvae_tfx/data/fingerprint.py), so that a
replaced image re-runs ingestion rather than reusing a cached result that skipped or lacked it."""

from typing import Any

from tfx.components.example_gen import driver, utils
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from nvae_tfx.data import celeba, checks, fingerprint, image_folder
from nvae_tfx.options import SourceOptions


class Driver(driver.FileBasedDriver):
    def resolve_exec_properties(
        self, exec_properties: dict[str, Any], pipeline_info, component_info
    ) -> dict[str, Any]:
        exec_properties = super().resolve_exec_properties(
            exec_properties, pipeline_info, component_info
        )
        options = SourceOptions.from_custom_config(
            proto_utils.json_to_proto(
                exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY],
                example_gen_pb2.CustomConfig(),
            )
        )
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        if options.source == 'dir':
            image_dir = f'{input_base.rstrip("/")}/{celeba.IMAGE_DIR}'
            exec_properties[utils.FINGERPRINT_PROPERTY_NAME] += (
                f'\n{celeba.IMAGE_DIR}: {fingerprint.directory_fingerprint(image_dir)}'
            )
        elif options.source == 'folder':
            names = image_folder.list_images(input_base, checks.gfile_files())
            exec_properties[utils.FINGERPRINT_PROPERTY_NAME] += (
                f'\nimages: {fingerprint.directory_fingerprint(input_base, names)}'
            )
        return exec_properties
