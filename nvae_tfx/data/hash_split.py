"""The train/eval split of sources that have none of their own (the faces dataset): each image
goes by a hash of its key, so the split is the same on every run and machine, does not depend on
the order files are listed in, and an added image leaves every other where it was."""

import hashlib

SPLITS = ('train', 'eval')
# What each faces source hashes: a folder's file names are stable; TFDS 'lfw' records carry no
# file name (only the person's), so they go by their image's bytes.
KEYS = {
    'folder': "the file's path relative to data_dir",
    'tfds': "the image's encoded bytes",
}


def split_of(key: str | bytes, eval_fraction: float) -> str:
    """'eval' when the first 8 bytes of sha256(key), as an integer over 2**64, fall below
    eval_fraction; 'train' otherwise."""
    data = key.encode() if isinstance(key, str) else key
    position = int.from_bytes(hashlib.sha256(data).digest()[:8], 'big') / 2**64
    return 'eval' if position < eval_fraction else 'train'


def rule(source: str, eval_fraction: float) -> str:
    """The split as one line, for the Examples artifact and the logs."""
    return (
        f'eval if the first 8 bytes of sha256({KEYS[source]}) / 2**64 < {eval_fraction}, else train'
    )
