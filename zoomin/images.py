"""Decoding any image a user brings into the one form the framework uses: upright 8-bit RGB.

Datasets scraped from the web hold CMYK JPEGs, palette PNGs with transparency, 16-bit TIFFs,
grayscale scans, phone photos with an EXIF rotation, truncated downloads and decompression bombs.
Every path into a model goes through :func:`load_rgb`, so training, evaluation and detection see the
same pixels, and a bad file raises :class:`ImageProblem` with a reason a person can act on.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 64_000_000
"""Images above this many pixels are refused before decoding (decompression-bomb guard)."""


class ImageProblem(ValueError):
    """An image that cannot be used, with the reason."""


def load_rgb(source: str | os.PathLike | Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``source`` (a path or a PIL image) as upright 8-bit RGB, or raise :class:`ImageProblem`."""
    if isinstance(source, Image.Image):
        image = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageProblem(f"image file not found: {path}")
        if path.stat().st_size == 0:
            raise ImageProblem(f"image file is empty (0 bytes): {path}")
        try:
            image = Image.open(path)
        except (UnidentifiedImageError, OSError) as e:
            raise ImageProblem(f"image cannot be decoded: {path} ({e})") from None
    w, h = image.size
    if w * h > max_pixels:
        raise ImageProblem(f"image has {w}x{h} = {w * h} pixels, over the limit of {max_pixels}")
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageProblem(f"image is truncated or corrupt: {e}") from None
    return _to_rgb(image)


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB; transparency is composited on white, high bit depths are scaled, not clipped."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if mode == "F":
        arr = np.asarray(image, dtype=np.float64)
        top = 1.0 if arr.max() <= 1.0 else 255.0
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")
