"""Locating a prepared TFDS dataset (mnist, celeb_a, lfw) in a user-given data directory.

Nothing here downloads: machines running the pipeline may have no internet access. TensorFlow
and TFDS are imported where files are read, so that the layout can be checked before they are
loaded (nvae_tfx/data/checks.py).
"""

from nvae_tfx.data.errors import DataError

# Our dataset name -> TFDS's.
TFDS_NAMES = {'mnist': 'mnist', 'celeba': 'celeb_a', 'faces': 'lfw'}
# TFDS split -> our split name, per supported dataset. LFW has one split, 'train', which the
# faces dataset divides into train and eval by hash (hash_split.py): 'all' here.
SPLITS = {
    'mnist': {'train': 'train', 'test': 'eval'},
    'celeb_a': {'train': 'train', 'validation': 'eval', 'test': 'test'},
    'lfw': {'train': 'all'},
}
INFO_FILE = 'dataset_info.json'


def info_pattern(name: str, data_dir: str) -> str:
    """Glob of the dataset_info.json of every prepared version."""
    return f'{data_dir.rstrip("/")}/{name}/*/{INFO_FILE}'


def newest_version_dir(info_files) -> str:
    """The version directory (e.g. .../mnist/3.0.1) of the newest of these dataset_info.json."""
    version_dirs = [p.rsplit('/', 1)[0] for p in info_files]
    return max(
        version_dirs,
        key=lambda d: tuple(int(x) if x.isdigit() else -1 for x in d.rsplit('/', 1)[1].split('.')),
    )


def not_prepared(name: str, data_dir: str, detail: str) -> DataError:
    return DataError(
        f'{data_dir.rstrip("/")}/{name}',
        f'TFDS dataset {name!r} is not prepared here ({detail}). This machine cannot download it. '
        f'Either prepare it where there is network access (`tfds build {name} --data_dir=DIR`, or '
        f'tfds.builder({name!r}, data_dir=DIR).download_and_prepare()) and pass that DIR with '
        f'--data_dir, or use the raw files: --source=idx for MNIST IDX files, --source=dir for a '
        f'CelebA img_align_celeba folder with list_eval_partition.txt, --source=folder for a '
        f'folder of face images such as the extracted lfw.tgz.',
    )


def check_supported(name: str, data_dir: str) -> None:
    if name not in SPLITS:
        raise DataError(
            data_dir, f'TFDS dataset {name!r} is not supported; use one of {sorted(SPLITS)}'
        )


def split_files(name: str, data_dir: str):
    """Returns {our split name: [tfrecord paths]} of a prepared TFDS dataset."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    check_supported(name, data_dir)
    if not tf.io.gfile.isdir(data_dir):
        raise DataError(data_dir, 'TFDS data directory not found')
    info_files = tf.io.gfile.glob(info_pattern(name, data_dir))
    if not info_files:
        raise not_prepared(name, data_dir, f'no <version>/{INFO_FILE}')
    # Read the newest prepared version as it is, whatever TFDS release wrote it.
    builder = tfds.builder_from_directory(newest_version_dir(info_files))
    files = {}
    for tfds_split, ours in SPLITS[name].items():
        if tfds_split not in builder.info.splits:
            raise not_prepared(name, data_dir, f'split {tfds_split!r} is missing')
        paths = [str(p) for p in builder.info.splits[tfds_split].filepaths]
        missing = [p for p in paths if not tf.io.gfile.exists(p)]
        if missing:
            raise DataError(missing[0], f'TFDS {name} shard listed in {INFO_FILE} is missing')
        files[ours] = paths
    return files
