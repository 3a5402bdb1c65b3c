"""Reading the per-row columns a reward needs, defensively.

Columns come from the data layer, not from the model, so a *missing* column is a configuration
error and raises at once (a silent None per row would train on nothing). Odd *values* in a present
column (an image size of zero, a degenerate annotation) are tolerated: the helpers here turn them
into None or drop them, and each term documents what it then returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from zoomin.boxes import Box
from zoomin.codecs import decode_with_frame


def require(columns: Mapping[str, object], name: str, n: int, term: str) -> list:
    """Column ``name`` as a list of ``n`` values, or a ValueError naming the term that needs it."""
    if name not in columns:
        raise ValueError(
            f"reward {term!r} needs the dataset column {name!r}, which this batch lacks "
            f"(columns present: {sorted(k for k in columns if k not in _TRL_EXTRAS)})"
        )
    values = columns[name]
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != n:
        size = len(values) if isinstance(values, Sequence) else type(values).__name__
        raise ValueError(f"reward {term!r}: column {name!r} must hold one value per completion ({n}), got {size}")
    return list(values)


_TRL_EXTRAS = frozenset({"prompts", "completion_ids", "trainer_state", "log_extra", "log_metric", "environments"})


def as_label(value: object) -> str | None:
    """The row's label if it is exactly "real" or "fake" (the data schema's words), else None."""
    return value if value in ("real", "fake") else None


def real_number(value: object) -> float | None:
    """``value`` as a finite float, or None (bools are not numbers here; ints too big for a float are not)."""
    if type(value) is bool or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def as_size(value: object) -> tuple[float, float] | None:
    """A ``[width, height]`` pair of finite positive numbers, or None (zeros, NaN, junk)."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    w, h = real_number(value[0]), real_number(value[1])
    if w is None or h is None or w <= 0 or h <= 0:
        return None
    return w, h


def as_numbers4(value: object) -> list[float] | None:
    """Four finite numbers from a list or tuple, or None.

    Plain ints and floats (what JSON and ``datasets`` yield) take a fast path, since this runs for
    every box of every row; other numeric types (NumPy scalars) go through :func:`real_number`.
    """
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return None
    a, b, c, d = value
    if type(a) in _PLAIN_NUMBERS and type(b) in _PLAIN_NUMBERS and type(c) in _PLAIN_NUMBERS and type(d) in _PLAIN_NUMBERS:
        try:
            numbers = [float(a), float(b), float(c), float(d)]
        except OverflowError:
            return None
        return numbers if all(map(math.isfinite, numbers)) else None
    numbers = [real_number(v) for v in value]
    return None if None in numbers else numbers  # type: ignore[return-value]


_PLAIN_NUMBERS = frozenset({int, float})


def valid_boxes(value: object) -> list[Box]:
    """The usable boxes of an annotation column entry (None or junk count as no boxes)."""
    if not isinstance(value, (list, tuple)):
        return []
    boxes = [as_numbers4(b) for b in value]
    return [b for b in boxes if b is not None and usable(b)]


def decode_box(numbers: list[float], image_size: tuple[float, float], frame: tuple[float, float]) -> Box | None:
    """Four finite model coordinates (as the parser or :func:`as_numbers4` yields them) decoded to an
    original-pixel box, or None if the result is not usable."""
    box = decode_with_frame(numbers, image_size, frame)
    return box if usable(box) else None


def usable(box: list[float]) -> bool:
    """For four finite numbers: exactly :func:`zoomin.boxes.box_problem`'s rules (not inverted, not
    zero-area), plus a finite area, so IoU arithmetic can never overflow into NaN. Written out because
    it runs for every box of every completion and box_problem's generality costs several times more."""
    x1, y1, x2, y2 = box
    return x1 < x2 and y1 < y2 and math.isfinite((x2 - x1) * (y2 - y1))


def inside(box: Sequence[float], image_size: tuple[float, float]) -> bool:
    """Whether ``box`` lies inside the image, allowing float rounding from decoding at the edge."""
    w, h = image_size
    tol = 1e-9 * max(w, h)
    return box[0] >= -tol and box[1] >= -tol and box[2] <= w + tol and box[3] <= h + tol


def finite(value: float | None) -> float | None:
    """None stays None (TRL counts it as 0 in the completion's weighted sum: docs/rewards.md, "What None
    means"); anything not finite becomes 0.0, never NaN or inf."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else 0.0
