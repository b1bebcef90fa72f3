"""Uses a pushed model from the command line through its SavedModel signatures alone (no model
code): PNG grids of samples and of latent-space tools, or the log-likelihood of image files.

  python -m pipeline.sample --out samples.png --num 64 --temperature 0.8
  python -m pipeline.sample --temperatures 0.6,0.8,1.0 --num 8      # one row per temperature
  python -m pipeline.sample --interpolate a.png b.png --steps 8      # linear and spherical rows
  python -m pipeline.sample --blend a.png b.png --alpha 0.25,0.5,0.75
  python -m pipeline.sample --mix a.png b.png --top_groups 1,3       # one row per N
  python -m pipeline.sample --reconstruct a.png b.png c.png
  python -m pipeline.sample --score digit0.png digit1.png --iw_samples 1000

The model is the newest version under --serving_dir (Pusher's numbered directories) unless
--version names one. Samples use the model's sampling state (BatchNorm readjusted as the
Evaluator measured it); equal seeds give equal images. The latent tools encode the image files
(posterior means, or with --latent sample a posterior sample drawn with --seed) and decode every
group's latent: --interpolate goes from A to B in --steps images, linearly and along the great
circle (--interpolation picks one); --blend decodes alpha * zA + (1 - alpha) * zB in every group;
--mix decodes A's N coarsest groups with B's others and B's with A's (default: every N).
Image files are PNG/JPEG of the model's size (MNIST also 28x28, padded to the 32x32 canvas as
Transform pads), grey for MNIST (scored ones binarized with --seed, as the Evaluator binarizes)
and RGB for the colour faces; other modes are converted. Bad input is one line, `error: ...`,
exit status 2, found before the model loads.
"""

import argparse
import io
import os
import sys

import numpy as np
from PIL import Image, UnidentifiedImageError

from nvae_tfx import datasets, images
from pipeline import configs, latent_tools, logging_setup
from pipeline.flags import FlagParser

MODES = ('score', 'reconstruct', 'interpolate', 'blend', 'mix', 'temperatures')
LATENT_MODES = ('reconstruct', 'interpolate', 'blend', 'mix')
# Flags of one or a few modes, with their defaults: given for another mode, they are an error.
MODE_FLAGS = {
    'iw_samples': (('score',), 100),
    'latent': (LATENT_MODES, 'mean'),
    'steps': (('interpolate',), 8),
    'interpolation': (('interpolate',), 'both'),
    'alpha': (('blend',), (0.25, 0.5, 0.75)),
    'top_groups': (('mix',), None),  # None: every N the model has
    'temperature': ((None,), 1.0),  # None: the sample grid, no mode flag
    'num': ((None, 'temperatures'), None),  # None: 64 in the sample grid, 8 a temperature row
}
NUM_SAMPLES, NUM_PER_TEMPERATURE = 64, 8


def at_least(low: int):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'not an integer: {text!r}') from None
        if value < low:
            raise argparse.ArgumentTypeError(f'must be at least {low}, got {value}')
        return value

    return parse


def number_list(kind, low, high=None, low_open=False):
    """Comma-separated numbers, each in [low, high] ((low, high] when low_open; no upper bound
    when high is None)."""
    interval = f'{"(" if low_open else "["}{low}, {high}]' if high is not None else f'>= {low}'

    def parse(text):
        try:
            values = tuple(kind(v) for v in text.split(','))
        except ValueError:
            raise argparse.ArgumentTypeError(f'not a list of {kind.__name__}s: {text!r}') from None
        for v in values:
            if v < low or (low_open and v == low) or (high is not None and v > high):
                raise argparse.ArgumentTypeError(f'{v} is outside {interval}')
        return values

    return parse


temperatures = number_list(float, 0.0, 10.0, low_open=True)


def one_temperature(text):
    return temperatures(text)[0]


def default(flag: str) -> str:
    """A mode flag's default as the flag is written."""
    value = MODE_FLAGS[flag][1]
    return ','.join(map(str, value)) if isinstance(value, tuple) else str(value)


def parse_args(argv):
    p = FlagParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--dataset', choices=datasets.DATASETS, default='mnist')
    p.add_argument('--serving_dir', help="Pusher's destination; default: the dataset's")
    p.add_argument('--version', help='a version directory under --serving_dir; default: newest')
    p.add_argument('--out', help='the PNG grid; default: <mode>.png (samples.png)')
    p.add_argument(
        '--seed', type=int, default=0, help='of samples, posterior samples, binarization'
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument('--score', nargs='+', metavar='IMAGE', help='log-likelihoods of images')
    mode.add_argument(
        '--reconstruct', nargs='+', metavar='IMAGE', help='images and reconstructions'
    )
    mode.add_argument('--interpolate', nargs=2, metavar=('A', 'B'), help='a strip from A to B')
    mode.add_argument('--blend', nargs=2, metavar=('A', 'B'), help='zA and zB mixed by --alpha')
    mode.add_argument(
        '--mix', nargs=2, metavar=('A', 'B'), help='coarse groups of one, fine of other'
    )
    mode.add_argument(
        '--temperatures',
        type=temperatures,
        help='comma-separated; one row of samples each, same seed',
    )
    p.add_argument(
        '--num', type=at_least(1), help=f'samples ({NUM_SAMPLES}; a row: {NUM_PER_TEMPERATURE})'
    )
    p.add_argument(
        '--temperature',
        type=one_temperature,
        help=f"of the prior's latents ({default('temperature')})",
    )
    p.add_argument(
        '--iw_samples',
        type=at_least(1),
        help=f'importance samples K of the NLL bound ({default("iw_samples")})',
    )
    p.add_argument(
        '--latent',
        choices=latent_tools.LATENTS,
        help=f'posterior mean or sample ({default("latent")})',
    )
    p.add_argument(
        '--steps',
        type=at_least(2),
        help=f'images in an interpolation, ends included ({default("steps")})',
    )
    p.add_argument(
        '--interpolation',
        choices=(*latent_tools.INTERPOLATIONS, 'both'),
        help=f'one row, or two ({default("interpolation")})',
    )
    p.add_argument(
        '--alpha',
        type=number_list(float, 0.0, 1.0),
        help=f'blend weights of A ({default("alpha")})',
    )
    p.add_argument('--top_groups', type=number_list(int, 1), help='N per row of --mix (every N)')
    args = p.parse_args(argv)
    args.mode = next((m for m in MODES if getattr(args, m) is not None), None)
    for flag, (modes, value) in MODE_FLAGS.items():
        if getattr(args, flag) is None:
            setattr(args, flag, value)
        elif args.mode not in modes:
            name = {m: f'--{m}' if m else 'the sample grid' for m in (*modes, args.mode)}
            used = ', '.join(name[m] for m in modes)
            p.error(f'--{flag} is for {used}, not {name[args.mode]}')
    if args.num is None:
        args.num = NUM_PER_TEMPERATURE if args.mode == 'temperatures' else NUM_SAMPLES
    if args.mode == 'score' and args.out:
        p.error('--out is for the grids, not --score')
    if args.out is None and args.mode != 'score':
        args.out = f'{args.mode or "samples"}.png'
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


def signature_inputs(path: str) -> dict:
    """{signature: {input: shape}} read from saved_model.pb alone, in a fraction of the time
    loading the model takes: the files and flags that do not fit are refused first."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(f'{path}/saved_model.pb', 'rb') as f:
        proto.ParseFromString(f.read())
    return {
        name: {key: tuple(d.size for d in t.tensor_shape.dim) for key, t in sig.inputs.items()}
        for name, sig in proto.meta_graphs[0].signature_def.items()
    }


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


def checked_inputs(args, path: str):
    """(image shape, images read from the mode's files or None): every file and flag checked
    against the model's signatures before it loads."""
    signatures = signature_inputs(path)
    shape = signatures['reconstruct']['images'][1:]
    if args.mode in LATENT_MODES:
        if 'decode' not in signatures:
            raise ValueError(
                f'{path}: this model has no encode/decode signatures (exported before them); '
                'push a newer one'
            )
        groups = signatures['decode']['keep'][0]
        if args.mode == 'mix':
            args.top_groups = args.top_groups or tuple(range(1, groups))
            if max(args.top_groups) >= groups:
                raise ValueError(
                    f'--top_groups {max(args.top_groups)}: the model has {groups} latent groups, '
                    f'so N can be 1 to {groups - 1}'
                )
    files = getattr(args, args.mode) if args.mode and args.mode != 'temperatures' else None
    x = np.stack([read_image(f, shape) for f in files]) if files else None
    if args.out:
        import tensorflow as tf

        parent = os.path.dirname(args.out)
        if parent and not tf.io.gfile.isdir(parent):
            raise ValueError(f'{args.out}: no such directory {parent}')
    return shape, x


def write_grid(path: str, tiles: np.ndarray, columns: int) -> None:
    """Refuses non-finite images; tiles of 32 pixels or fewer are doubled for viewing."""
    import tensorflow as tf

    if not np.isfinite(tiles).all():
        raise RuntimeError(f'the model gave non-finite images; {path} not written')
    scale = 2 if tiles.shape[1] <= 32 else 1
    try:
        with tf.io.gfile.GFile(path, 'wb') as f:
            f.write(images.png_bytes(images.grid(tiles, columns), scale))
    except tf.errors.OpError as e:
        raise ValueError(f'{path}: cannot write ({e.message})') from None


def score(served, args, x, shape, path) -> None:
    import tensorflow as tf

    if shape[-1] == 1:
        x = datasets.fixed_binarize(x, args.seed)
    nats = -served.signatures['log_likelihood_images'](
        images=tf.constant(x), num_samples=tf.constant(args.iw_samples)
    )['log_likelihood'].numpy()
    if not np.isfinite(nats).all():
        raise RuntimeError(f'{path}: non-finite log-likelihood for {args.score}')
    for f, n in zip(args.score, nats, strict=True):
        print(f'{f}\t{n:.3f} nats\t{n / np.log(2) / num_dims(shape):.4f} bits/dim')


def samples(served, num: int, temperature: float, seed: int) -> np.ndarray:
    import tensorflow as tf

    return served.signatures['sample'](
        num=tf.constant(num), temperature=tf.constant(temperature), seed=tf.constant(seed)
    )['images'].numpy()


def grid_of_mode(served, args, x):
    """(tiles, columns, what they show) of the mode's PNG grid."""
    if args.mode is None:
        tiles = samples(served, args.num, args.temperature, args.seed)
        return tiles, 0, f'{args.num} samples at temperature {args.temperature}'
    if args.mode == 'temperatures':
        rows = [samples(served, args.num, t, args.seed) for t in args.temperatures]
        return np.concatenate(rows), args.num, f'rows at temperatures {args.temperatures}'
    model = latent_tools.ServedLatents(served)
    if args.mode == 'reconstruct':
        pairs = latent_tools.reconstruction_pairs(model, x, args.latent, args.seed)
        return pairs, min(10, len(pairs)), f'{len(x)} images and their reconstructions'
    za, zb = zip(*(np.split(z, 2) for z in model.encode(x, args.latent, args.seed)), strict=True)
    if args.mode == 'interpolate':
        kinds = (
            latent_tools.INTERPOLATIONS if args.interpolation == 'both' else (args.interpolation,)
        )
        rows = [latent_tools.interpolation(model, za, zb, args.steps, k) for k in kinds]
        return np.concatenate(rows), args.steps, f'{" and ".join(kinds)} interpolation'
    if args.mode == 'blend':
        blended = latent_tools.blend(model, za, zb, args.alpha)
        return blended, len(blended), f'blends at alpha {args.alpha}'
    grid = latent_tools.mixing_grid(model, x, za, zb, args.top_groups)
    return grid, 4, f'mixes of the {args.top_groups} coarsest groups'


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        logging_setup.configure(verbose=False)
        configs.tensorflow_environment()
        import tensorflow as tf

        path = model_dir(args.serving_dir, args.version)
        shape, x = checked_inputs(args, path)
        served = tf.saved_model.load(path)
        if args.mode == 'score':
            score(served, args, x, shape, path)
            return
        tiles, columns, shown = grid_of_mode(served, args, x)
        write_grid(args.out, tiles, columns)
        print(f'{args.out}: {shown} from {path}')
    except ValueError as e:  # input: a flag, a file, a path
        print(f'error: {e}', file=sys.stderr)
        sys.exit(2)
    except RuntimeError as e:  # the model's output
        sys.exit(f'error: {e}')


if __name__ == '__main__':
    main()
