"""A folder of face photos, the faces dataset's 'folder' source: every JPEG and PNG file below
data_dir (LFW's lfw/<person>/<name>.jpg layout included), split into train and eval by a hash
of each file's path relative to data_dir (hash_split.py). Names starting with '.' (hidden files,
macOS' ._ copies) and files of other extensions are not images here and are left out.

TensorFlow (for tf.io.gfile) is imported by the caller's file functions (checks.gfile_files), so
that a local folder can be listed and split before TensorFlow is loaded."""

from nvae_tfx.data import hash_split
from nvae_tfx.data.errors import DataError

SUFFIXES = ('.jpg', '.jpeg', '.png')


def list_images(data_dir: str, files) -> list[str]:
    """Sorted paths, relative to data_dir with '/' separators, of every image file below it."""
    root = data_dir.rstrip('/')
    names = []
    for directory, subdirs, file_names in files.walk(root):
        subdirs[:] = [d for d in subdirs if not d.startswith('.')]  # os.walk descends into these
        relative = directory.rstrip('/')[len(root) :].lstrip('/')
        names += [
            f'{relative}/{name}' if relative else name
            for name in file_names
            if name.lower().endswith(SUFFIXES) and not name.startswith('.')
        ]
    return sorted(names)


def split_images(data_dir: str, eval_fraction: float, files) -> dict[str, list[str]]:
    """{split: [relative paths]}; raises DataError if the folder holds no images or a split
    would be empty."""
    names = list_images(data_dir, files)
    if not names:
        raise DataError(
            data_dir, f'no images here or below (files ending in {", ".join(SUFFIXES)})'
        )
    splits = {split: [] for split in hash_split.SPLITS}
    for name in names:
        splits[hash_split.split_of(name, eval_fraction)].append(name)
    for split, members in splits.items():
        if not members:
            raise DataError(
                data_dir,
                f'the hash split of its {len(names)} images leaves {split} empty '
                f'(eval_fraction {eval_fraction}); add images or change --eval_fraction',
            )
    return splits
