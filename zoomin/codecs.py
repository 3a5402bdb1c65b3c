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

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

FAMILIES = ("qwen2_5_vl", "qwen2_vl", "qwen3_vl")
GRID = 1000
"""Side of the relative coordinate grid used by Qwen2-VL and Qwen3-VL."""


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

    The resize parameters matter only for ``qwen2_5_vl`` and must be the processor's own; build the
    codec with :meth:`from_processor` so they cannot drift from what the model actually sees.
    """

    family: str
    patch_size: int = 14
    merge_size: int = 2
    min_pixels: int = 56 * 56
    max_pixels: int = 28 * 28 * 1280

    def __post_init__(self) -> None:
        check_family(self.family)

    def frame(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """``(width, height)`` of the model's coordinate space for an image of ``image_size``."""
        if self.family != "qwen2_5_vl":
            return GRID, GRID
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

        w, h = image_size
        rh, rw = smart_resize(
            h, w, factor=self.patch_size * self.merge_size, min_pixels=self.min_pixels, max_pixels=self.max_pixels
        )
        return rw, rh

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
