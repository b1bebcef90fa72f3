"""Per-source readers: validate a source up front, then read each split in parallel with Beam.

Each reader yields serialized tf.train.Example records (bytes, so Beam moves them with its
fast bytes coder) in the layout of records.py; a record that cannot be read goes to the
'skipped' output as '<file>\\t<reason>', whence the executor counts and logs it
(on_corrupt='skip') or fails naming the first and counting the others (on_corrupt='fail').
"""

import hashlib
import io
import os

import apache_beam as beam
import numpy as np
import tensorflow as tf
from PIL import Image

from nvae_tfx import datasets
from nvae_tfx.data import (
    celeba,
    checks,
    embedded,
    hash_split,
    idx,
    image_folder,
    records,
    tfds_source,
)
from nvae_tfx.data.errors import DataError
from nvae_tfx.options import SourceOptions

SKIPPED = 'skipped'


def input_patterns(options: SourceOptions) -> dict[str, str]:
    """{split: glob relative to input_base}; ExampleGen's driver fingerprints the matched files.

    Patterns match only small index files (never CelebA's 202,599 JPEGs) so that the driver's
    per-file stat stays cheap; a changed index file or package still re-runs ingestion. A face
    folder has no index file: its pattern matches the folder's top-level entries, and the
    driver adds the fingerprint of every image file (components/example_gen/driver.py).
    """
    splits = checks.split_names(options)
    if options.source == 'embedded':
        return {s: os.path.basename(embedded.data_file()) for s in splits}
    if options.source == 'idx':
        return {s: f'{idx.PREFIXES[s]}-*-idx?-ubyte*' for s in splits}
    if options.source == 'dir':
        return {s: celeba.PARTITION_FILE for s in splits}
    if options.source == 'folder':
        return {s: '*' for s in splits}
    name = tfds_source.TFDS_NAMES[options.dataset]
    return {s: f'{name}/*/{tfds_source.INFO_FILE}' for s in splits}


def input_base(options: SourceOptions) -> str:
    if options.source == 'embedded':
        return os.path.dirname(embedded.data_file())
    return options.data_dir


def validate(options: SourceOptions) -> dict[str, object]:
    """Checks the source's files (checks.py) and reads what can be read without reading every
    image: every IDX digit and label, the CelebA partition, a face folder's split, the TFDS shard
    list (a faces split reads all of TFDS's one split, keeping its share of the records).

    Returns per-split work items for the Beam readers; raises DataError on bad input.
    """
    if options.source == 'embedded':
        _, labels = embedded.load()
        return {s: idx_list.tolist() for s, idx_list in embedded.stratified_split(labels).items()}
    checks.check_source(options, checks.gfile_files())
    if options.source == 'idx':
        work = {}
        for split, prefix in idx.PREFIXES.items():
            pair = idx.find_idx_pair(options.data_dir, prefix)
            idx.read_idx_pair(*pair)
            work[split] = [pair]
        return work
    if options.source == 'dir':
        return celeba.read_partition_file(f'{options.data_dir.rstrip("/")}/{celeba.PARTITION_FILE}')
    if options.source == 'folder':
        return image_folder.split_images(
            options.data_dir, options.eval_fraction, checks.gfile_files()
        )
    files = tfds_source.split_files(tfds_source.TFDS_NAMES[options.dataset], options.data_dir)
    if options.dataset == 'faces':
        return {split: files['all'] for split in hash_split.SPLITS}
    return files


def split_rule(options: SourceOptions) -> str | None:
    """How the source's examples were divided into splits when no file says (the faces
    dataset's hash split), for the Examples artifact; None where the source's files say."""
    if options.dataset != 'faces':
        return None
    return hash_split.rule(options.source, options.eval_fraction)


@beam.typehints.with_output_types(bytes)
class _ReadIdxPair(beam.DoFn):
    def process(self, pair):
        images, labels = idx.read_idx_pair(*pair)
        prefix = os.path.basename(pair[0]).split('-')[0]
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            yield records.mnist_example(
                image.tobytes(), int(label), f'{prefix}-{i:05d}'
            ).SerializeToString()


@beam.typehints.with_output_types(bytes)
class _ReadEmbedded(beam.DoFn):
    """Loads the 5,000 digits once per worker and emits the requested indices."""

    def setup(self):
        self._images, self._labels = embedded.load()

    def process(self, index):
        yield records.mnist_example(
            self._images[index].tobytes(), int(self._labels[index]), f'embedded-{index:04d}'
        ).SerializeToString()


def _bad_file(error: DataError):
    """Every bad file goes to the SKIPPED output, in either --on_corrupt mode: the executor fails
    once all are read, so that the error can say how many there are."""
    yield beam.pvalue.TaggedOutput(SKIPPED, f'{error.path}\t{error.problem}')


@beam.typehints.with_output_types(bytes)
class _ReadImageFile(beam.DoFn):
    """Reads and checks one face image named relative to the source's image directory (CelebA's
    img_align_celeba, or a face folder); its name is its id."""

    def __init__(self, options: SourceOptions):
        self._options = options
        self._image_dir = options.data_dir.rstrip('/')
        self._listed_in = 'the folder when it was listed'
        if options.source == 'dir':
            self._image_dir += f'/{celeba.IMAGE_DIR}'
            self._listed_in = 'the partition file'

    def process(self, name):
        path = f'{self._image_dir}/{name}'
        try:
            if not tf.io.gfile.exists(path):
                raise DataError(path, f'listed in {self._listed_in} but not found')
            with tf.io.gfile.GFile(path, 'rb') as f:
                data = f.read()
            shape = celeba.check_image(
                path,
                data,
                self._options.image_shape,
                datasets.IMAGE_FORMATS[self._options.dataset],
            )
        except DataError as e:
            yield from _bad_file(e)
            return
        yield records.celeba_example(data, name, shape).SerializeToString()


@beam.typehints.with_output_types(bytes)
class _TfdsToExample(beam.DoFn):
    """Converts a TFDS mnist/celeb_a/lfw record to this project's layout of the same dataset;
    for the faces dataset, only the records the hash split puts in `split`."""

    def __init__(self, options: SourceOptions, split: str):
        self._options = options
        self._split = split

    def process(self, path_and_record):
        path, record = path_and_record
        features = tf.train.Example.FromString(record).features.feature
        image = features['image'].bytes_list.value[0]
        if self._options.dataset == 'faces' and (
            hash_split.split_of(image, self._options.eval_fraction) != self._split
        ):
            return
        key = f'{os.path.basename(path)}:{hash_id(image)}'
        try:
            if self._options.dataset == 'mnist':
                with Image.open(io.BytesIO(image)) as img:
                    pixels = np.asarray(img, dtype=np.uint8).reshape(-1)
                if pixels.size != datasets.MNIST_PIXELS:
                    raise DataError(
                        path,
                        f'record {key}: image has {pixels.size} pixels, '
                        f'expected {datasets.MNIST_PIXELS}',
                    )
                yield records.mnist_example(
                    pixels.tobytes(), features['label'].int64_list.value[0], key
                ).SerializeToString()
            else:
                shape = celeba.check_image(
                    f'{path}[{key}]',
                    image,
                    self._options.image_shape,
                    datasets.IMAGE_FORMATS[self._options.dataset],
                )
                yield records.celeba_example(image, key, shape).SerializeToString()
        except DataError as e:
            yield from _bad_file(e)


def hash_id(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


def read_split(pipeline: beam.Pipeline, options: SourceOptions, split: str, work: list):
    """Returns (examples, skipped) PCollections for one split."""
    label = f'[{split}]'
    items = pipeline | f'Create{label}' >> beam.Create(work)
    if options.source == 'embedded':
        examples = (
            items
            | f'Reshuffle{label}' >> beam.Reshuffle()
            | f'Read{label}' >> beam.ParDo(_ReadEmbedded())
        )
        return examples, pipeline | f'NoSkips{label}' >> beam.Create([])
    if options.source == 'idx':
        # WriteSplit reshuffles before writing, which spreads the records of the one file read.
        examples = items | f'Read{label}' >> beam.ParDo(_ReadIdxPair())
        return examples, pipeline | f'NoSkips{label}' >> beam.Create([])
    if options.source in ('dir', 'folder'):
        # Reshuffle first so that file reads and image checks spread over all workers.
        outputs = (
            items
            | f'Reshuffle{label}' >> beam.Reshuffle()
            | f'Read{label}'
            >> beam.ParDo(_ReadImageFile(options)).with_outputs(SKIPPED, main='examples')
        )
        return outputs.examples, outputs[SKIPPED]
    outputs = (
        items
        | f'Reshuffle{label}' >> beam.Reshuffle()
        | f'ReadTFRecords{label}' >> beam.io.ReadAllFromTFRecord(with_filename=True)
        | f'Convert{label}'
        >> beam.ParDo(_TfdsToExample(options, split)).with_outputs(SKIPPED, main='examples')
    )
    return outputs.examples, outputs[SKIPPED]
