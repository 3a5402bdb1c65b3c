"""Decoding any image a user brings into the one form the framework uses: upright 8-bit RGB.

Datasets scraped from the web hold CMYK JPEGs, palette PNGs with transparency, 16-bit TIFFs,
grayscale scans, phone photos with an EXIF rotation, truncated downloads and decompression bombs.
Every path into a model goes through :func:`load_rgb`, so training, evaluation and detection see the
same pixels, and a bad file raises :class:`ImageProblem` with a reason a person can act on. That
includes images every Qwen-VL processor refuses (a strip longer than 200 times its width): refused
here, one record or one file is named and skipped, instead of the processor stopping a run or a batch.

Decompression bombs meet two limits. Ours (``max_pixels``) is checked on the header's size before
any pixel is decoded. Pillow's own refuses a header above twice ``PIL.Image.MAX_IMAGE_PIXELS``
(about 179 M pixels) already inside ``Image.open`` by raising ``DecompressionBombError``, which is
not an ``OSError``; it becomes an :class:`ImageProblem` like any other bad file. Between once and twice
that number Pillow only warns; the warning is silenced here because ``max_pixels`` is the limit that
decides (a caller raising it above Pillow's error limit must raise ``PIL.Image.MAX_IMAGE_PIXELS`` too).
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from zoomin.codecs import MAX_ASPECT_RATIO

DEFAULT_MAX_PIXELS = 64_000_000
"""Images above this many pixels are refused before decoding (decompression-bomb guard)."""


class ImageProblem(ValueError):
    """An image that cannot be used, with the reason."""


def load_rgb(source: str | os.PathLike | Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``source`` (a path or a PIL image) as upright 8-bit RGB, or raise :class:`ImageProblem`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = source if isinstance(source, Image.Image) else _open(Path(source))
        try:
            return _decode(image, max_pixels)
        except ImageProblem:
            if image is not source:
                image.close()  # a run meeting many bad files must not run out of file handles
            raise


def _decode(image: Image.Image, max_pixels: int) -> Image.Image:
    w, h = image.size
    if w * h > max_pixels:
        raise ImageProblem(f"image has {w}x{h} = {w * h} pixels, over the limit of {max_pixels}")
    if max(w, h) > MAX_ASPECT_RATIO * min(w, h):
        raise ImageProblem(f"image is {w}x{h}, an aspect ratio of {max(w, h) / min(w, h):.0f}:1; the Qwen-VL "
                           f"processors take at most {MAX_ASPECT_RATIO}:1")
    try:
        image.load()
        return _to_rgb(ImageOps.exif_transpose(image))
    except Image.DecompressionBombError as e:  # a frame or tile past Pillow's limit
        raise ImageProblem(f"image refused as a possible decompression bomb: {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as e:
        raise ImageProblem(f"image is truncated or corrupt: {e}") from None


def _open(path: Path) -> Image.Image:
    """``Image.open`` (header only), with every way it refuses a file turned into :class:`ImageProblem`."""
    if not path.is_file():
        raise ImageProblem(f"image file not found: {path}")
    if path.stat().st_size == 0:
        raise ImageProblem(f"image file is empty (0 bytes): {path}")
    try:
        return Image.open(path)
    except Image.DecompressionBombError as e:
        raise ImageProblem(f"image refused as a possible decompression bomb: {path} ({e})") from None
    except (UnidentifiedImageError, OSError, ValueError, TypeError) as e:
        raise ImageProblem(f"image cannot be decoded: {path} ({e})") from None


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
