"""Uses a pushed model from the command line through its SavedModel signatures alone (no
model code): a PNG grid of samples, or the log-likelihood of image files.

  python -m pipeline.sample --out samples.png --num 64 --temperature 0.8
  python -m pipeline.sample --version 1700000000 --seed 3 --out samples.png
  python -m pipeline.sample --score digit0.png digit1.png --iw_samples 1000

The model is the newest version under --serving_dir (Pusher's numbered directories) unless
--version names one. Samples use the model's sampling state (BatchNorm readjusted as the
Evaluator measured it); equal seeds give equal images. Scored images are PNG/JPEG files of the
model's size (MNIST also 28x28, padded to the 32x32 canvas as Transform pads), grey for MNIST
(binarized with --seed, as the Evaluator binarizes) and RGB for CelebA.
"""

import argparse
import io
import os
import sys

import numpy as np
from PIL import Image, UnidentifiedImageError

from nvae_tfx import datasets, images
from pipeline import configs, logging_setup


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument('--dataset', choices=datasets.DATASETS, default='mnist')
    p.add_argument('--serving_dir', help="Pusher's destination; default: the dataset's")
    p.add_argument('--version', help='a version directory under --serving_dir; default: newest')
    p.add_argument('--out', default='samples.png', help='the PNG grid of samples')
    p.add_argument('--num', type=int, default=64, help='samples in the grid')
    p.add_argument('--temperature', type=float, default=1.0, help="of the prior's latents")
    p.add_argument('--seed', type=int, default=0, help='of the samples (or the binarization)')
    p.add_argument('--score', nargs='+', metavar='IMAGE', help='score these images instead')
    p.add_argument(
        '--iw_samples', type=int, default=100, help='importance samples K of the NLL bound'
    )
    args = p.parse_args(argv)
    if args.num < 1:
        sys.exit(f'error: --num must be at least 1, got {args.num}')
    if args.iw_samples < 1:
        sys.exit(f'error: --iw_samples must be at least 1, got {args.iw_samples}')
    if not 0.0 < args.temperature <= 10.0:
        sys.exit(f'error: --temperature must be in (0, 10], got {args.temperature}')
    args.serving_dir = args.serving_dir or configs.serving_dir(args.dataset)
    if '://' not in args.serving_dir:
        args.serving_dir = os.path.expanduser(args.serving_dir)
    return args


def model_dir(serving_dir: str, version: str | None) -> str:
    """The version directory to load: the given one, else the newest (highest number). Paths
    go through tf.io.gfile: a serving directory on gs:// works as a local one."""
    import tensorflow as tf

    if not tf.io.gfile.isdir(serving_dir):
        raise ValueError(f'{serving_dir}: no such serving directory (has a model been pushed?)')
    names = (v.rstrip('/') for v in tf.io.gfile.listdir(serving_dir))
    versions = sorted((v for v in names if v.isdigit()), key=int)
    if version is None:
        if not versions:
            raise ValueError(f'{serving_dir}: no pushed model versions')
        version = versions[-1]
    path = f'{serving_dir.rstrip("/")}/{version}'
    if not tf.io.gfile.exists(f'{path}/saved_model.pb'):
        raise ValueError(f'{path}: not a SavedModel (versions: {", ".join(versions) or "none"})')
    return path


def read_image(path: str, shape: tuple) -> np.ndarray:
    """One image file (any file system tf.io.gfile reaches) as the model takes it: [H, W, C]
    floats in [0, 1]."""
    import tensorflow as tf

    height, width, channels = shape
    try:
        with tf.io.gfile.GFile(path, 'rb') as f:
            data = f.read()
    except tf.errors.NotFoundError:
        raise ValueError(f'{path}: no such file') from None
    if not data:
        raise ValueError(f'{path}: empty file')
    try:
        with Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image.convert('L' if channels == 1 else 'RGB'), np.float32)
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f'{path}: not a readable image ({type(e).__name__})') from None
    pixels = pixels.reshape(pixels.shape[:2] + (channels,)) / 255.0
    if channels == 1 and pixels.shape == datasets.MNIST_SHAPE and shape != datasets.MNIST_SHAPE:
        p = datasets.MNIST_PAD
        pixels = np.pad(pixels, ((p, p), (p, p), (0, 0)))
    if pixels.shape != tuple(shape):
        raise ValueError(
            f'{path}: a {pixels.shape[1]}x{pixels.shape[0]} image; the model takes '
            f'{width}x{height}' + (' (or 28x28)' if channels == 1 else '')
        )
    return pixels


def num_dims(shape: tuple) -> int:
    """Dimensions counted by bits/dim, as the Evaluator counts them: MNIST's 784, else 3HW."""
    return datasets.MNIST_PIXELS if shape[-1] == 1 else int(np.prod(shape))


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        logging_setup.configure(verbose=False)
        configs.tensorflow_environment()
        import tensorflow as tf

        path = model_dir(args.serving_dir, args.version)

        served = tf.saved_model.load(path)
        if args.score:
            score = served.signatures['log_likelihood_images']
            shape = tuple(score.structured_input_signature[1]['images'].shape[1:])
            x = np.stack([read_image(f, shape) for f in args.score])
            if shape[-1] == 1:
                x = datasets.fixed_binarize(x, args.seed)
            nats = -score(images=tf.constant(x), num_samples=tf.constant(args.iw_samples))[
                'log_likelihood'
            ].numpy()
            if not np.isfinite(nats).all():
                raise ValueError(f'{path}: non-finite log-likelihood for {args.score}')
            for f, n in zip(args.score, nats, strict=True):
                print(f'{f}\t{n:.3f} nats\t{n / np.log(2) / num_dims(shape):.4f} bits/dim')
            return
        sample = served.signatures['sample']
        drawn = sample(
            num=tf.constant(args.num),
            temperature=tf.constant(args.temperature),
            seed=tf.constant(args.seed),
        )['images'].numpy()
        scale = 2 if drawn.shape[1] <= 32 else 1
        try:
            with tf.io.gfile.GFile(args.out, 'wb') as f:
                f.write(images.png_bytes(images.grid(drawn), scale))
        except tf.errors.OpError as e:
            raise ValueError(f'{args.out}: cannot write ({e.message})') from None
        print(f'{args.out}: {args.num} samples at temperature {args.temperature} from {path}')
    except ValueError as e:
        sys.exit(f'error: {e}')


if __name__ == '__main__':
    main()
