"""Box codecs: the one place where model-facing coordinates meet original-image pixels.

Model families disagree on what the numbers in a box mean:

* ``qwen2_5_vl`` answers in absolute pixels of the image *as resized by its processor*
  (the "smart resize" to multiples of ``patch_size * merge_size`` within ``[min_pixels, max_pixels]``);
* ``qwen2_vl`` and ``qwen3_vl`` answer on a 0-1000 grid relative to the image.

A codec turns both into a *frame*, the ``(width, height)`` of the model's coordinate space for a
given image, after which encoding and decoding are plain scalings. Data rows carry the frame next
to the original size, so rewards decode boxes with :func:`decode_with_frame` alone, without a
processor and without guessing a convention.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

FAMILIES = ("qwen2_5_vl", "qwen2_vl", "qwen3_vl")
GRID = 1000
"""Side of the relative coordinate grid used by Qwen2-VL and Qwen3-VL."""
MAX_ASPECT_RATIO = 200
"""The Qwen-VL processors refuse an image whose long side is more than this many times its short side."""
BOUNDS = ("min_pixels", "max_pixels")
"""The codec fields a recipe may set (``protocol.codec``): the pixel budget. The others are the model's."""


def check_family(family: str) -> str:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known families: {', '.join(FAMILIES)}")
    return family


def encode_with_frame(
    box: Sequence[float], image_size: tuple[int, int], frame: tuple[int, int]
) -> list[int]:
    """Original-pixel box -> integer model coordinates, clamped to the frame."""
    w, h = image_size
    fw, fh = frame
    sx, sy = fw / w, fh / h
    return [
        min(max(round(box[0] * sx), 0), fw),
        min(max(round(box[1] * sy), 0), fh),
        min(max(round(box[2] * sx), 0), fw),
        min(max(round(box[3] * sy), 0), fh),
    ]


def decode_with_frame(
    coords: Sequence[float], image_size: tuple[int, int], frame: tuple[int, int]
) -> list[float]:
    """Model coordinates -> original-pixel box (floats, not clamped: callers judge validity)."""
    sx, sy = image_size[0] / frame[0], image_size[1] / frame[1]
    return [coords[0] * sx, coords[1] * sy, coords[2] * sx, coords[3] * sy]


@dataclass(frozen=True)
class BoxCodec:
    """Converts boxes between original pixels and one model family's coordinates.

    ``min_pixels``/``max_pixels`` are the checkpoint's **pixel budget**: every image (the global view
    and each crop) is resized by the processor's "smart resize" into that range, in multiples of
    ``patch_size * merge_size``. The budget decides how many tokens an image costs and, for
    ``qwen2_5_vl``, the frame of every box, so it is applied to the processor by every stage and
    engine (:meth:`apply_to`) and a checkpoint's saved codec is the one it is served with. Build the
    codec with :meth:`from_processor` so its fields cannot drift from what the model actually sees.
    """

    family: str
    patch_size: int = 14
    merge_size: int = 2
    min_pixels: int = 56 * 56
    max_pixels: int = 28 * 28 * 1280

    def __post_init__(self) -> None:
        check_family(self.family)
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError(f"codec pixel budget needs 0 < min_pixels <= max_pixels, got {self.min_pixels} and "
                             f"{self.max_pixels}")

    @property
    def factor(self) -> int:
        """Pixels per side of one merged image token."""
        return self.patch_size * self.merge_size

    def resized(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """``(width, height)`` the processor resizes an image of ``image_size`` to, under this budget.

        Raises ``ValueError`` past :data:`MAX_ASPECT_RATIO`, as the processor does.
        """
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

        w, h = image_size
        rh, rw = smart_resize(h, w, factor=self.factor, min_pixels=self.min_pixels, max_pixels=self.max_pixels)
        return rw, rh

    def image_tokens(self, image_size: tuple[int, int]) -> int:
        """Merged image tokens (``<|image_pad|>`` in the expanded prompt) of an image of ``image_size``."""
        w, h = self.resized(image_size)
        return (w // self.factor) * (h // self.factor)

    @property
    def max_image_tokens(self) -> int:
        """The most tokens any one image can cost under this budget: ``max_pixels`` worth, or, under a
        small budget, more for a strip at the processors' 200:1 limit (they keep at least one token row,
        so its long side is not shrunk as far)."""
        side = math.isqrt(self.max_pixels)
        return max(self.max_pixels // self.factor**2, self.image_tokens((MAX_ASPECT_RATIO * side, side)))

    @property
    def max_coordinate(self) -> int:
        """The largest number a box of any image can hold: the grid's side, or the longest side an image
        can be resized to under the budget (at the processors' most extreme aspect ratio)."""
        return GRID if self.family != "qwen2_5_vl" else math.isqrt(self.max_pixels * MAX_ASPECT_RATIO)

    def frame(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """``(width, height)`` of the model's coordinate space for an image of ``image_size``."""
        if self.family != "qwen2_5_vl":
            return GRID, GRID
        return self.resized(image_size)

    def apply_to(self, processor: Any) -> None:
        """Set this budget on a processor's image processor (in place), so it resizes as trained."""
        ip = getattr(processor, "image_processor", processor)
        ip.size = {"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels}
        for name in BOUNDS:  # older processors also read the bare attributes
            if getattr(ip, name, None) is not None:
                setattr(ip, name, getattr(self, name))

    def encode(self, box: Sequence[float], image_size: tuple[int, int]) -> list[int]:
        return encode_with_frame(box, image_size, self.frame(image_size))

    def decode(self, coords: Sequence[float], image_size: tuple[int, int]) -> list[float]:
        return decode_with_frame(coords, image_size, self.frame(image_size))

    @classmethod
    def from_processor(cls, family: str, processor: Any) -> BoxCodec:
        """Read patch/merge sizes and pixel bounds from a Qwen processor (or its image processor)."""
        ip = getattr(processor, "image_processor", processor)
        size = getattr(ip, "size", None) or {}
        min_pixels = getattr(ip, "min_pixels", None) or size.get("shortest_edge")
        max_pixels = getattr(ip, "max_pixels", None) or size.get("longest_edge")
        if min_pixels is None or max_pixels is None:
            raise ValueError(f"cannot read min/max pixels from image processor {type(ip).__name__}")
        return cls(
            family=family,
            patch_size=int(ip.patch_size),
            merge_size=int(ip.merge_size),
            min_pixels=int(min_pixels),
            max_pixels=int(max_pixels),
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> BoxCodec:
        return cls(**d)
