"""Boxes in the one internal convention, and the geometry built on them.

Every box inside the framework is ``[x1, y1, x2, y2]`` in pixels of the *original* (upright) image,
floats, with ``x2 > x1`` and ``y2 > y1``. Model-facing coordinates are converted at the edges by
:mod:`zoomin.codecs`. The functions here are pure Python on purpose: rewards call them once per
completion on a handful of boxes, where NumPy's per-call overhead costs more than the arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy.optimize import linear_sum_assignment

Box = list[float]
"""``[x1, y1, x2, y2]`` in original-image pixels."""


def box_problem(box: object, image_size: tuple[int, int] | None = None) -> str | None:
    """Why ``box`` is not a valid box (of an image of ``(width, height)``), or None if it is.

    Used by the data validator, so the reasons are phrased for a person reading a report.
    """
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        return f"box must be a list of 4 numbers [x1, y1, x2, y2], got {box!r:.80}"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
        return f"box has non-numeric values: {box!r:.80}"
    if not all(math.isfinite(v) for v in box):
        return f"box has NaN or infinite values: {box!r}"
    x1, y1, x2, y2 = box
    if x2 < x1 or y2 < y1:
        return f"box is inverted (need x1 < x2 and y1 < y2): {list(box)}"
    if x2 == x1 or y2 == y1:
        return f"box has zero area: {list(box)}"
    if image_size is not None:
        w, h = image_size
        if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
            return f"box {list(box)} lies outside the {w}x{h} image"
    return None


def area(box: Sequence[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes; 0 when either is empty."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def iou_matrix(pred: Sequence[Sequence[float]], gt: Sequence[Sequence[float]]) -> list[list[float]]:
    """``m[i][j] = iou(pred[i], gt[j])``."""
    return [[iou(p, g) for g in gt] for p in pred]


def mean_best_iou(pred: Sequence[Sequence[float]], gt: Sequence[Sequence[float]]) -> float:
    """The paper's localisation score: mean over predicted boxes of the best IoU with any annotated box.

    0 when there are no predictions or no annotations (callers decide what empty-vs-empty means).
    """
    if not pred or not gt:
        return 0.0
    return sum(max(iou(p, g) for g in gt) for p in pred) / len(pred)


def match_boxes(
    pred: Sequence[Sequence[float]], gt: Sequence[Sequence[float]], min_iou: float = 0.0
) -> list[tuple[int, int, float]]:
    """One-to-one matching that maximises total IoU (Hungarian); pairs below ``min_iou`` are dropped.

    Returns ``(pred_index, gt_index, iou)`` triples. Each annotated box can be claimed once, so
    many copies of a good box or one giant box do not collect credit several times.
    """
    if not pred or not gt:
        return []
    m = iou_matrix(pred, gt)
    rows, cols = linear_sum_assignment(m, maximize=True)
    return [(int(i), int(j), m[i][j]) for i, j in zip(rows, cols) if m[i][j] > min_iou]


def clamp_box(box: Sequence[float], image_size: tuple[int, int]) -> Box:
    w, h = image_size
    return [min(max(box[0], 0.0), w), min(max(box[1], 0.0), h), min(max(box[2], 0.0), w), min(max(box[3], 0.0), h)]
