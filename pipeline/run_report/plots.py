"""Training curves as a PNG (matplotlib, drawn off screen): loss, reconstruction and KL, each
on the training and the validation data, and the KL of each latent group."""

import io

import matplotlib

matplotlib.use('Agg')  # no display: the figure only becomes PNG bytes

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

PANELS = (('loss', 'loss (nats)'), ('recon', 'reconstruction (nats)'), ('kl', 'KL (nats)'))
KL_GROUP_PREFIX = 'kl_'  # kl_00, kl_01, ...: the KL of each latent group
LABELS = {'train': 'training', 'validation': 'validation'}


def training_curves(scalars: dict) -> bytes | None:
    """A PNG of the curves in scalars ({'train'|'validation': {name: [(epoch, value)]}}, as
    contents.scalars reads them), or None when there is nothing to draw."""
    train = scalars.get('train', {})
    groups = sorted(name for name in train if name.startswith(KL_GROUP_PREFIX))
    panels = [p for p in PANELS if any(p[0] in s for s in scalars.values())]
    if not panels and not groups:
        return None
    count = len(panels) + bool(groups)
    figure, axes = plt.subplots(1, count, figsize=(4.2 * count, 3.2), squeeze=False)
    axes = list(axes[0])
    for ax, (name, title) in zip(axes, panels, strict=False):
        for kind, series in scalars.items():
            if name in series:
                epochs, values = zip(*series[name], strict=True)
                ax.plot(epochs, values, marker='o', markersize=3, label=LABELS.get(kind, kind))
        _style(ax, title)
    if groups:
        ax = axes[-1]
        for name in groups:
            epochs, values = zip(*train[name], strict=True)
            ax.plot(epochs, values, marker='o', markersize=3, label=f'group {name[3:]}')
        _style(ax, 'KL per latent group (training)')
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def _style(ax, title: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel('epoch', fontsize=9)
    last = int(max((max(line.get_xdata()) for line in ax.get_lines()), default=1))
    ax.set_xlim(0.5, last + 0.5)  # whole epochs, a single one included
    if last <= 12:
        ax.set_xticks(range(1, last + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
