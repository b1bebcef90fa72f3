"""Reader for an aligned CelebA directory: img_align_celeba/*.jpg + list_eval_partition.txt.

TensorFlow (for tf.io.gfile) and PIL are imported where files are read or decoded, so that the
partition file can be checked before they are loaded (nvae_tfx/data/checks.py).
"""

import io

from nvae_tfx.data.errors import DataError

IMAGE_DIR = 'img_align_celeba'
PARTITION_FILE = 'list_eval_partition.txt'
# list_eval_partition.txt codes -> our split names. NVAE evaluates on the validation
# partition, so it becomes 'eval'; the official test partition is kept as 'test'.
PARTITIONS = {0: 'train', 1: 'eval', 2: 'test'}


def parse_partition_lines(path: str, lines) -> dict[str, list[str]]:
    """Parses '<file>.jpg <0|1|2>' lines of the partition file at `path` into
    {split: [file names]}, rejecting anything else."""
    splits = {name: [] for name in PARTITIONS.values()}
    seen = set()
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split()
        if (
            len(parts) != 2
            or not parts[0].lower().endswith('.jpg')
            or parts[1] not in ('0', '1', '2')
        ):
            raise DataError(
                path, f'line {line_no} is {line.strip()!r}; expected "<name>.jpg <0|1|2>"'
            )
        name = parts[0]
        # A name is a file in the image directory; a path could reach any file on the machine.
        if '/' in name or '\\' in name:
            raise DataError(
                path, f'line {line_no}: {name!r} is not a file name inside {IMAGE_DIR}/'
            )
        if name in seen:
            raise DataError(path, f'line {line_no}: {name} is listed twice')
        seen.add(name)
        splits[PARTITIONS[int(parts[1])]].append(name)
    if not seen:
        raise DataError(path, 'partition file lists no images')
    return splits


def read_partition_file(path: str) -> dict[str, list[str]]:
    """{split: [file names]} of a partition file, local or remote."""
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise DataError(path, 'partition file not found')
    with tf.io.gfile.GFile(path, 'r') as f:
        return parse_partition_lines(path, f)


def check_image(
    path: str, data: bytes, expected_shape: tuple[int, int, int], formats=('JPEG',)
) -> tuple[int, int, int]:
    """Fully decodes image bytes of one of `formats` (PIL's names; CelebA's are JPEG, other face
    images may be PNG too); returns (height, width, channels) or raises DataError."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise DataError(path, 'empty file')
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in formats:
                raise DataError(path, f'not a {" or ".join(formats)} image (found {img.format})')
            img.load()  # decodes every scanline, so truncated files fail here
            shape = (img.height, img.width, len(img.getbands()))
    except DataError:
        raise
    except UnidentifiedImageError as e:
        # PIL's message names the in-memory buffer it was given, not the file.
        raise DataError(path, 'corrupt or non-image file (no known image format)') from e
    except Exception as e:  # PIL raises many types for broken files
        raise DataError(path, f'corrupt or non-image file ({type(e).__name__}: {e})') from e
    if shape != tuple(expected_shape):
        raise DataError(
            path,
            f'image is {shape[0]}x{shape[1]}x{shape[2]} (HxWxC), '
            f'expected {expected_shape[0]}x{expected_shape[1]}x{expected_shape[2]}',
        )
    return shape
