"""Locating a prepared TFDS dataset (mnist, celeb_a) in a user-given data directory.

Nothing here downloads: machines running the pipeline may have no internet access.
"""

import tensorflow as tf

from nvae_tfx.data.errors import DataError

# Our dataset name -> TFDS's.
TFDS_NAMES = {'mnist': 'mnist', 'celeba': 'celeb_a'}
# TFDS split -> our split name, per supported dataset.
SPLITS = {
    'mnist': {'train': 'train', 'test': 'eval'},
    'celeb_a': {'train': 'train', 'validation': 'eval', 'test': 'test'},
}


def _not_prepared(name: str, data_dir: str, detail: str) -> DataError:
    return DataError(
        f'{data_dir.rstrip("/")}/{name}',
        f'TFDS dataset {name!r} is not prepared here ({detail}). This machine cannot download it. '
        f'Either prepare it where there is network access (`tfds build {name} --data_dir=DIR`, or '
        f'tfds.builder({name!r}, data_dir=DIR).download_and_prepare()) and pass that DIR with '
        f'--data_dir, or use the raw files: --source=idx for MNIST IDX files, --source=dir for a '
        f'CelebA img_align_celeba folder with list_eval_partition.txt.',
    )


def split_files(name: str, data_dir: str):
    """Returns {our split name: [tfrecord paths]} of a prepared TFDS dataset."""
    import tensorflow_datasets as tfds

    if name not in SPLITS:
        raise DataError(
            data_dir, f'TFDS dataset {name!r} is not supported; use one of {sorted(SPLITS)}'
        )
    if not tf.io.gfile.isdir(data_dir):
        raise DataError(data_dir, 'TFDS data directory not found')
    if not tf.io.gfile.glob(f'{data_dir.rstrip("/")}/{name}/*/dataset_info.json'):
        raise _not_prepared(name, data_dir, 'no <version>/dataset_info.json')
    # Read the newest prepared version as it is, whatever TFDS release wrote it.
    version_dirs = [
        p.rsplit('/', 1)[0]
        for p in tf.io.gfile.glob(f'{data_dir.rstrip("/")}/{name}/*/dataset_info.json')
    ]
    newest = max(
        version_dirs,
        key=lambda d: tuple(int(x) if x.isdigit() else -1 for x in d.rsplit('/', 1)[1].split('.')),
    )
    builder = tfds.builder_from_directory(newest)
    files = {}
    for tfds_split, ours in SPLITS[name].items():
        if tfds_split not in builder.info.splits:
            raise _not_prepared(name, data_dir, f'split {tfds_split!r} is missing')
        paths = [str(p) for p in builder.info.splits[tfds_split].filepaths]
        missing = [p for p in paths if not tf.io.gfile.exists(p)]
        if missing:
            raise DataError(missing[0], f'TFDS {name} shard listed in dataset_info.json is missing')
        files[ours] = paths
    return files
