"""Public datasets' region shapes -> MagniFake boxes, each conversion with its reason when it fails.

Datasets mark artifacts as polygons (flat ``[x1, y1, x2, y2, ...]`` or ``[[x, y], ...]``), as
``[x, y, w, h]`` rectangles, or as boxes on a normalised grid. Every one becomes the internal
``[x1, y1, x2, y2]`` in pixels of the upright image: the polygon's bounding box, clipped to the image.
A shape that leaves no area (too few points, all points on a line, wholly outside the image) is
dropped, and the reason is what the import report says about it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from zoomin.boxes import Box


@dataclass(frozen=True)
class Converted:
    """One region's box, or why there is none. ``clipped``: the shape reached past the image."""

    box: Box | None
    problem: str | None = None
    clipped: bool = False


def polygon_box(points: object, size: tuple[int, int]) -> Converted:
    """The bounding box of a polygon given flat or as ``[x, y]`` pairs, clipped to ``size`` (w, h)."""
    if not isinstance(points, (list, tuple)):
        return Converted(None, f"polygon must be a list of coordinates, got {type(points).__name__}")
    if points and all(isinstance(p, (list, tuple)) for p in points):
        if any(len(p) < 2 for p in points):
            return Converted(None, "polygon has a point with fewer than 2 coordinates")
        xs, ys = [p[0] for p in points], [p[1] for p in points]
    else:
        if len(points) % 2:
            return Converted(None, f"polygon has an odd number of coordinates ({len(points)})")
        xs, ys = list(points[0::2]), list(points[1::2])
    if not all(_finite(v) for v in xs + ys):
        return Converted(None, "polygon has non-numeric or non-finite coordinates")
    if len(xs) < 3:
        return Converted(None, f"polygon has {len(xs)} point(s); a region needs at least 3")
    return _clip([min(xs), min(ys), max(xs), max(ys)], size, "polygon")


def xywh_box(region: object, size: tuple[int, int]) -> Converted:
    """``[x, y, w, h]`` (top-left corner, width, height in pixels) -> ``[x1, y1, x2, y2]``, clipped."""
    if not isinstance(region, (list, tuple)) or len(region) != 4 or not all(_finite(v) for v in region):
        return Converted(None, f"region must be 4 finite numbers [x, y, w, h], got {region!r:.80}")
    x, y, w, h = (float(v) for v in region)
    if w <= 0 or h <= 0:
        return Converted(None, f"region [x, y, w, h] = {list(region)} has no area")
    return _clip([x, y, x + w, y + h], size, "region")


def scaled_box(box: object, size: tuple[int, int], scale: tuple[float, float]) -> Converted:
    """``[x1, y1, x2, y2]`` multiplied by ``scale`` (x, y): 1 for pixels, ``w / 1000`` for a 0-1000 grid."""
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(_finite(v) for v in box):
        return Converted(None, f"box must be 4 finite numbers [x1, y1, x2, y2], got {box!r:.80}")
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 < x1 or y2 < y1:
        return Converted(None, f"box {list(box)} is inverted (need x1 < x2 and y1 < y2)")
    return _clip([x1 * scale[0], y1 * scale[1], x2 * scale[0], y2 * scale[1]], size, "box")


def union(boxes: Sequence[Box]) -> Box:
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]


def _clip(box: Box, size: tuple[int, int], what: str) -> Converted:
    w, h = size
    if box[2] <= box[0] or box[3] <= box[1]:
        return Converted(None, f"{what} is degenerate: its extent {_fmt(box)} has zero width or height")
    clipped = [min(max(box[0], 0.0), w), min(max(box[1], 0.0), h), min(max(box[2], 0.0), w), min(max(box[3], 0.0), h)]
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        return Converted(None, f"{what} {_fmt(box)} lies outside the {w}x{h} image")
    return Converted([float(v) for v in clipped], clipped=clipped != box)


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fmt(box: Box) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"
