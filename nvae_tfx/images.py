"""Image grids for people: sample and reconstruction sheets written as PNG or TensorBoard images."""

import io
import math

import numpy as np
from PIL import Image


def grid(images: np.ndarray, columns: int = 0, pad: int = 2) -> np.ndarray:
    """[N, H, W, C] floats in [0, 1] -> one uint8 [rows*(H+pad)+pad, cols*(W+pad)+pad, C] sheet."""
    images = np.clip(np.nan_to_num(np.asarray(images, np.float32), nan=0.0), 0.0, 1.0)
    n, h, w, c = images.shape
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    sheet = np.ones((rows * (h + pad) + pad, columns * (w + pad) + pad, c), np.float32)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        sheet[
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + col * (w + pad) : pad + col * (w + pad) + w,
        ] = image
    return np.round(sheet * 255).astype(np.uint8)


def png_bytes(sheet: np.ndarray, scale: int = 1) -> bytes:
    image = Image.fromarray(sheet[..., 0] if sheet.shape[-1] == 1 else sheet)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format='PNG')
    return buffer.getvalue()
