#!/usr/bin/env bash
# The latent-tool figures of docs/serving.md, from the newest pushed MNIST model (`make run`'s),
# through pipeline.sample alone. Extra arguments go to each pipeline.sample command, e.g.
#   bash scripts/docs_latents.sh --serving_dir /tmp/other/serving/nvae-mnist
# A and B are the first eval digits of the embedded data labelled 2 and 7.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

$PY - "$work" <<'PYTHON'
import sys

from PIL import Image

from nvae_tfx.data import embedded

images, labels = embedded.load()
eval_split = embedded.stratified_split(labels)['eval']
for name, label in (('a', 2), ('b', 7)):
    first = next(i for i in eval_split if labels[i] == label)
    Image.fromarray(images[first]).save(f'{sys.argv[1]}/{name}.png')
PYTHON

$PY -m pipeline.sample --interpolate "$work/a.png" "$work/b.png" --steps 10 \
    --out docs/latent_interpolation.png "$@"
$PY -m pipeline.sample --mix "$work/a.png" "$work/b.png" --out docs/latent_mixing.png "$@"
