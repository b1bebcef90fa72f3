"""ImageExampleGen executor: reads every split with Beam, writes them as ExampleGen does, and
records per-split example and skipped-file counts on the Examples artifact, and how the splits
were made where no file says (the faces dataset's hash split)."""

import os
from typing import Any

import apache_beam as beam
from absl import logging
from tfx import types
from tfx.components.example_gen import write_split
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components.example_gen import custom_config
from nvae_tfx.data import sources
from nvae_tfx.data.errors import DataError

REPORT_DIR = 'IngestionReport'


def _single_text_file(path: str):
    return beam.io.WriteToText(path, shard_name_template='', num_shards=1)


class Executor(base_beam_executor.BaseBeamExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        input_config = proto_utils.json_to_proto(
            exec_properties[standard_component_specs.INPUT_CONFIG_KEY], example_gen_pb2.Input()
        )
        options = custom_config.unpack(exec_properties)
        split_names = [s.name for s in input_config.splits]
        examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY]
        )
        examples.split_names = artifact_utils.encode_split_names(split_names)
        file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY)
        report_dir = os.path.join(examples.uri, REPORT_DIR)

        work = sources.validate(options)
        logging.info(
            'ImageExampleGen: %s from %s source %s',
            options.dataset,
            options.source,
            options.data_dir or '(embedded)',
        )
        with self._make_beam_pipeline() as pipeline:
            for split in split_names:
                split_examples, skipped = sources.read_split(pipeline, options, split, work[split])
                _ = split_examples | f'Write[{split}]' >> write_split.WriteSplit(
                    artifact_utils.get_split_uri([examples], split), file_format, exec_properties
                )
                _ = (
                    split_examples
                    | f'Count[{split}]' >> beam.combiners.Count.Globally()
                    | f'CountToText[{split}]' >> beam.Map(str)
                    | f'WriteCount[{split}]' >> _single_text_file(f'{report_dir}/{split}-count.txt')
                )
                _ = skipped | f'WriteSkipped[{split}]' >> _single_text_file(
                    f'{report_dir}/{split}-skipped.tsv'
                )

        examples_utils.set_payload_format(
            examples, exec_properties[standard_component_specs.OUTPUT_DATA_FORMAT_KEY]
        )
        examples_utils.set_file_format(examples, write_split.to_file_format_str(file_format))
        self._record_report(examples, split_names, report_dir, options.on_corrupt)
        rule = sources.split_rule(options)
        if rule:
            examples.set_string_custom_property('split_rule', rule)
            examples.set_float_custom_property('split_eval_fraction', options.eval_fraction)
            logging.info('ImageExampleGen splits: %s', rule)

    @staticmethod
    def _record_report(
        examples: types.Artifact, split_names: list[str], report_dir: str, on_corrupt: str
    ):
        """Counts go to MLMD custom properties; every skipped file is logged by name. With
        on_corrupt='fail', bad files fail the run: the first by name, and how many others."""
        bad = {
            split: io_utils.read_string_file(f'{report_dir}/{split}-skipped.tsv').splitlines()
            for split in split_names
        }
        every_bad = [line for split in split_names for line in bad[split]]
        if on_corrupt == 'fail' and every_bad:
            path, problem = every_bad[0].split('\t', 1)
            others = len(every_bad) - 1
            if others:
                problem += (
                    f' (and {others} other bad file{"s" if others > 1 else ""}; '
                    '--on_corrupt=skip skips and lists them all)'
                )
            raise DataError(path, problem)
        examples.set_string_custom_property('dataset_source_report', report_dir)
        for split in split_names:
            count = int(io_utils.read_string_file(f'{report_dir}/{split}-count.txt').strip() or 0)
            examples.set_int_custom_property(f'num_examples_{split}', count)
            examples.set_int_custom_property(f'num_skipped_{split}', len(bad[split]))
            for line in bad[split]:
                path, reason = line.split('\t', 1)
                logging.warning('ImageExampleGen skipped %s (%s split): %s', path, split, reason)
            logging.info(
                'ImageExampleGen %s split: %d examples, %d skipped', split, count, len(bad[split])
            )
            if count == 0:
                raise ValueError(
                    f'ImageExampleGen produced no examples for split {split!r} (see {report_dir})'
                )
        examples.set_int_custom_property('num_skipped', len(every_bad))
