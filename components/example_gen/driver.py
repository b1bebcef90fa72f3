"""ImageExampleGen's driver: ExampleGen's input fingerprint, plus, for a CelebA directory or a
face folder, the fingerprint of its image files (nvae_tfx/data/fingerprint.py), so that a
replaced image re-runs ingestion rather than reusing a cached result that skipped or lacked it."""

from typing import Any

from tfx.components.example_gen import driver, utils
from tfx.types import standard_component_specs

from components.example_gen import custom_config
from nvae_tfx.data import celeba, checks, fingerprint, image_folder


class Driver(driver.FileBasedDriver):
    def resolve_exec_properties(
        self, exec_properties: dict[str, Any], pipeline_info, component_info
    ) -> dict[str, Any]:
        exec_properties = super().resolve_exec_properties(
            exec_properties, pipeline_info, component_info
        )
        options = custom_config.unpack(exec_properties)
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
