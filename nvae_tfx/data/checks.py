"""Checks of a data source that read no records: the directories and files it needs exist, IDX
headers agree with their files, the CelebA partition file is well-formed and names only files
that are there, a face folder holds images for both splits, a TFDS dataset is prepared with the
splits we read. Contents (every digit's label, every image) are checked where they are read
(sources.py).

The runners run these checks on local paths with Python's own file functions, before TensorFlow
is imported (pipeline/preflight.py), so that bad input fails in a second; the ExampleGen executor
runs them again through tf.io.gfile on the machine that reads the data, remote paths included.
"""

import glob
import gzip
import json
import os
import types
import zlib

from nvae_tfx.data import celeba, hash_split, idx, image_folder, tfds_source
from nvae_tfx.data.errors import DataError
from nvae_tfx.options import SourceOptions

# The embedded digits' fixed stratified split (embedded.stratified_split).
EMBEDDED_SPLITS = ('train', 'eval')
_CHUNK = 1 << 20

LOCAL_FILES = types.SimpleNamespace(
    exists=os.path.exists,
    isdir=os.path.isdir,
    listdir=os.listdir,
    glob=glob.glob,
    open=open,
    walk=os.walk,
)


def gfile_files() -> types.SimpleNamespace:
    """The same file functions through tf.io.gfile: local paths and every remote file system
    TensorFlow knows (gs://, ...)."""
    import tensorflow as tf

    gfile = tf.io.gfile
    return types.SimpleNamespace(
        exists=gfile.exists,
        isdir=gfile.isdir,
        listdir=gfile.listdir,
        glob=gfile.glob,
        open=gfile.GFile,
        walk=gfile.walk,
    )


def split_names(options: SourceOptions) -> tuple[str, ...]:
    """The splits a source provides, in ExampleGen's order."""
    if options.source == 'embedded':
        return EMBEDDED_SPLITS
    if options.dataset == 'faces':
        return hash_split.SPLITS
    if options.source == 'idx':
        return tuple(idx.PREFIXES)
    if options.source == 'dir':
        return tuple(celeba.PARTITIONS.values())
    return tuple(tfds_source.SPLITS[tfds_source.TFDS_NAMES[options.dataset]].values())


def check_source(options: SourceOptions, files=LOCAL_FILES) -> None:
    """Raises DataError naming the first file or directory that is missing or malformed."""
    if options.source == 'embedded':
        return
    if not files.isdir(options.data_dir):
        raise DataError(options.data_dir, 'data directory not found')
    if options.source == 'idx':
        _check_idx(options.data_dir, files)
    elif options.source == 'dir':
        _check_celeba_dir(options, files)
    elif options.source == 'folder':
        image_folder.split_images(options.data_dir, options.eval_fraction, files)
    else:
        _check_tfds(tfds_source.TFDS_NAMES[options.dataset], options.data_dir, files)


def _idx_dims(path: str, magic: int, files) -> tuple[int, ...]:
    """An IDX file's dimensions, after checking its header against its (uncompressed) length;
    a gzipped file is decompressed as a stream, never held in memory."""
    with files.open(path, 'rb') as f:
        gzipped = f.read(2) == idx.GZIP_SIGNATURE
        f.seek(0)
        if not gzipped:
            head = f.read(idx.MAX_HEADER_BYTES)
            f.seek(0, os.SEEK_END)
            length = f.tell()
        else:
            try:
                with gzip.GzipFile(fileobj=f) as stream:
                    head = stream.read(idx.MAX_HEADER_BYTES)
                    length = len(head)
                    while chunk := stream.read(_CHUNK):
                        length += len(chunk)
            except (EOFError, OSError, zlib.error) as e:
                raise DataError(path, f'corrupt or truncated gzip stream ({e})') from e
    dims, header_len = idx.parse_header(path, head, magic)
    idx.check_length(path, dims, header_len, length)
    return dims


def _check_idx(data_dir: str, files) -> None:
    for prefix in idx.PREFIXES.values():
        images_path, labels_path = idx.find_idx_pair(data_dir, prefix, exists=files.exists)
        idx.check_pair(
            images_path,
            _idx_dims(images_path, idx.IMAGES_MAGIC, files),
            labels_path,
            _idx_dims(labels_path, idx.LABELS_MAGIC, files),
        )


def _check_celeba_dir(options: SourceOptions, files) -> None:
    data_dir = options.data_dir.rstrip('/')
    image_dir = f'{data_dir}/{celeba.IMAGE_DIR}'
    if not files.isdir(image_dir):
        raise DataError(image_dir, 'CelebA image directory not found')
    partition_file = f'{data_dir}/{celeba.PARTITION_FILE}'
    if not files.exists(partition_file):
        raise DataError(partition_file, 'partition file not found')
    with files.open(partition_file, 'r') as f:
        splits = celeba.parse_partition_lines(partition_file, f)
    if options.on_corrupt == 'skip':
        return  # missing images are skipped and reported like unreadable ones
    present = set(files.listdir(image_dir))
    missing = [name for names in splits.values() for name in names if name not in present]
    if missing:
        others = f' (and {len(missing) - 1} other listed files are missing)' if missing[1:] else ''
        raise DataError(
            f'{image_dir}/{missing[0]}', f'listed in the partition file but not found{others}'
        )


def _check_tfds(name: str, data_dir: str, files) -> None:
    tfds_source.check_supported(name, data_dir)
    info_files = files.glob(tfds_source.info_pattern(name, data_dir))
    if not info_files:
        raise tfds_source.not_prepared(name, data_dir, f'no <version>/{tfds_source.INFO_FILE}')
    info_file = f'{tfds_source.newest_version_dir(info_files)}/{tfds_source.INFO_FILE}'
    try:
        with files.open(info_file, 'r') as f:
            prepared = {split['name'] for split in json.load(f).get('splits', [])}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(info_file, f'not a TFDS dataset_info.json ({e})') from e
    for tfds_split in tfds_source.SPLITS[name]:
        if tfds_split not in prepared:
            raise tfds_source.not_prepared(name, data_dir, f'split {tfds_split!r} is missing')
