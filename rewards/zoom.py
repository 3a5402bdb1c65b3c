"""Zoom-crop consistency: do the crops, the examine explanation and its verdict fit together?

The examine answer (``completions``) is judged against what the model was shown: ``region_boxes``
(the boxes introduced as "Region 1", "Region 2", ... in model coordinates, in order) and
``crop_windows`` (the integer original-pixel windows cropped for them, same order). Four parts, each
a registry term of its own, and their weighted mean ``zoom_consistency``:

``zoom_valid_crops``
    Share of regions whose crop is valid: the region box decodes (``image_size``/``coord_frame``) to
    a well-formed box inside the image, and its crop window lies inside the image with both sides at
    least ``min(protocol.crop.min_side, image side)``. No regions -> None. Unusable image size or
    frame -> None. With crops taken from annotations (examine stage) this is constant; in the joint
    stage it judges the policy's own boxes.
``zoom_citations``
    Share of the distinct "Region i" citations in ``<think>`` with ``1 <= i <= len(region_boxes)``;
    an explanation citing nothing scores 1.0 (nothing invented), no explanation scores 0.0.
``zoom_verdict_agreement``
    A "fake" verdict must cite at least one existing region (1.0, else 0.0). A "real" verdict must not
    describe a cited region as an artifact: 0.0 if any sentence of ``<think>`` that cites a region
    also contains an artifact word (word prefixes in ``artifact_words``, case-insensitive), else 1.0.
    No verdict -> 0.0. This is a word-level check, not a negation-aware reading ("no warping in
    Region 1" counts as describing an artifact).
``zoom_coverage``
    Share of the annotated artifact area (union of the row's ``boxes``) inside the union of the crop
    windows. A window counts only if its region box decodes to a valid box of at most
    ``max_box_fraction`` of the image area, so one giant box cannot cover everything (the data set
    drops annotations over half the image for the same reason). Real images and fakes without
    usable annotations -> None; unusable image size or frame -> None.

``zoom_consistency`` averages the parts that are not None with ``weights`` (default 1 each); None
when all are None.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache

from rewards._columns import as_label, as_numbers4, as_size, decode_box, inside, usable, valid_boxes
from rewards._term import RewardTerm, Rows
from zoomin.boxes import Box, area
from zoomin.protocol import Parsed

ARTIFACT_WORDS = (
    "artifact", "artefact", "distort", "unnatural", "inconsisten", "smear", "warp", "blur", "garbl",
    "malform", "deform", "checkerboard", "anomal", "implausib", "suspicious", "manipulat",
)
"""Word prefixes that describe a region as showing generation artifacts."""

ZOOM_PARTS = ("valid_crops", "citations", "verdict_agreement", "coverage")
_SENTENCE_END = re.compile(r"[.!?;\n]+")


def _regions(value: object) -> list:
    """A row's ``region_boxes``/``crop_windows`` entry as a list (junk counts as no regions)."""
    return list(value) if isinstance(value, (list, tuple)) else []


@dataclass
class ZoomValidCrops(RewardTerm):
    """Share of shown regions whose box and crop window are valid (see module docstring)."""

    name: str = "zoom_valid_crops"

    def score(self, rows: Rows) -> list[float | None]:
        return [
            self._one(_regions(r), _regions(w), as_size(s), as_size(f))
            for r, w, s, f in zip(
                rows.column("region_boxes"), rows.column("crop_windows"),
                rows.column("image_size"), rows.column("coord_frame"),
            )
        ]

    def _one(
        self, regions: list, windows: list, size: tuple[float, float] | None, frame: tuple[float, float] | None
    ) -> float | None:
        if not regions or size is None or frame is None:
            return None
        min_w, min_h = min(self.protocol.crop.min_side, size[0]), min(self.protocol.crop.min_side, size[1])
        valid = 0
        for i, coords in enumerate(regions):
            numbers = as_numbers4(coords)
            box = decode_box(numbers, size, frame) if numbers is not None else None
            window = as_numbers4(windows[i]) if i < len(windows) else None
            valid += (
                box is not None and inside(box, size)
                and window is not None and usable(window) and inside(window, size)
                and window[2] - window[0] >= min_w and window[3] - window[1] >= min_h
            )
        return valid / len(regions)


@dataclass
class ZoomCitations(RewardTerm):
    """Share of cited regions that exist (see module docstring)."""

    name: str = "zoom_citations"

    def score(self, rows: Rows) -> list[float | None]:
        answers = rows.answers(self.protocol, "examine", "completions")
        return [self._one(a, len(_regions(r))) for a, r in zip(answers, rows.column("region_boxes"))]

    def _one(self, answer: Parsed, n_regions: int) -> float:
        if not answer.think or not answer.think.strip():
            return 0.0
        cited = self.protocol.cited_regions(answer.think)
        if not cited:
            return 1.0
        return sum(1 <= c <= n_regions for c in cited) / len(cited)


@dataclass
class ZoomVerdictAgreement(RewardTerm):
    """Whether the verdict and the region citations agree (see module docstring)."""

    name: str = "zoom_verdict_agreement"
    artifact_words: tuple[str, ...] = ARTIFACT_WORDS

    def __post_init__(self) -> None:
        super().__post_init__()
        words = self.artifact_words
        if isinstance(words, str) or not all(isinstance(w, str) and w.strip() for w in words):
            raise ValueError(f"reward {self.name!r}: artifact_words must be a list of non-empty words, got {words!r}")
        self.artifact_words = tuple(words)

    def score(self, rows: Rows) -> list[float | None]:
        answers = rows.answers(self.protocol, "examine", "completions")
        pattern = _word_prefixes(self.artifact_words)
        return [self._one(a, len(_regions(r)), pattern) for a, r in zip(answers, rows.column("region_boxes"))]

    def _one(self, answer: Parsed, n_regions: int, pattern: re.Pattern) -> float:
        think = answer.think or ""
        cited = self.protocol.cited_regions
        if answer.verdict == "fake":
            return 1.0 if any(1 <= c <= n_regions for c in cited(think)) else 0.0
        if answer.verdict == "real":
            flagged = any(cited(s) and pattern.search(s) for s in _SENTENCE_END.split(think))
            return 0.0 if flagged else 1.0
        return 0.0


@lru_cache(maxsize=32)
def _word_prefixes(words: tuple[str, ...]) -> re.Pattern:
    if not words:
        return re.compile(r"(?!)")
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + ")", re.IGNORECASE)


@dataclass
class ZoomCoverage(RewardTerm):
    """Share of annotated artifact area inside the zoomed windows (see module docstring)."""

    name: str = "zoom_coverage"
    max_box_fraction: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.max_box_fraction <= 1:
            raise ValueError(f"reward {self.name!r}: max_box_fraction must be in (0, 1], got {self.max_box_fraction}")

    def score(self, rows: Rows) -> list[float | None]:
        return [
            self._one(as_label(label), gt, _regions(r), _regions(w), as_size(s), as_size(f))
            for label, gt, r, w, s, f in zip(
                rows.column("label"), rows.column("boxes"), rows.column("region_boxes"),
                rows.column("crop_windows"), rows.column("image_size"), rows.column("coord_frame"),
            )
        ]

    def _one(
        self, label: str | None, gt: object, regions: list, windows: list,
        size: tuple[float, float] | None, frame: tuple[float, float] | None,
    ) -> float | None:
        annotated = valid_boxes(gt)
        if label != "fake" or not annotated or size is None or frame is None:
            return None
        limit = self.max_box_fraction * size[0] * size[1]
        counted = []
        for coords, window in zip(regions, windows):
            numbers, window = as_numbers4(coords), as_numbers4(window)
            box = decode_box(numbers, size, frame) if numbers is not None else None
            if box is not None and area(box) <= limit and window is not None and usable(window):
                counted.append(window)
        total, covered = covered_area(annotated, counted)
        return covered / total if total > 0 else 0.0


def covered_area(targets: list[Box], windows: list[Box]) -> tuple[float, float]:
    """``(area of the union of targets, area of that union inside the union of windows)``.

    A sweep over vertical slabs cut at every box edge: within a slab each rectangle is a y-interval,
    so the areas are slab width times merged interval lengths. Exact, and fast for the handful of
    boxes a row has.
    """
    lo, hi = min(b[0] for b in targets), max(b[2] for b in targets)
    xs = sorted({x for b in (*targets, *windows) for x in (b[0], b[2]) if lo <= x <= hi})
    total = covered = 0.0
    for x0, x1 in zip(xs, xs[1:]):
        spans = _merge([(b[1], b[3]) for b in targets if b[0] <= x0 and b[2] >= x1])
        if not spans:
            continue
        shown = _merge([(b[1], b[3]) for b in windows if b[0] <= x0 and b[2] >= x1])
        total += (x1 - x0) * sum(hi - lo for lo, hi in spans)
        covered += (x1 - x0) * _overlap(spans, shown)
    return total, covered


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """Total length of the intersection of two sorted, disjoint interval lists."""
    i = j = 0
    length = 0.0
    while i < len(a) and j < len(b):
        length += max(0.0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return length


@dataclass
class ZoomConsistency(RewardTerm):
    """Weighted mean of the four zoom parts that are not None for a row; None when all are."""

    name: str = "zoom_consistency"
    weights: dict[str, float] = field(default_factory=dict)
    """Per-part weights by part name (``valid_crops``, ``citations``, ``verdict_agreement``,
    ``coverage``); parts not named keep weight 1, weight 0 drops a part."""
    artifact_words: tuple[str, ...] = ARTIFACT_WORDS
    max_box_fraction: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = sorted(set(self.weights) - set(ZOOM_PARTS))
        if unknown:
            raise ValueError(f"reward {self.name!r}: unknown zoom parts {unknown}; parts: {list(ZOOM_PARTS)}")
        for part, w in self.weights.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                raise ValueError(f"reward {self.name!r}: weight of {part!r} must be a number >= 0, got {w!r}")
        if not any(self.weights.get(p, 1.0) > 0 for p in ZOOM_PARTS):
            raise ValueError(f"reward {self.name!r}: at least one zoom part needs a positive weight")
        self._parts = {
            "valid_crops": ZoomValidCrops(self.protocol),
            "citations": ZoomCitations(self.protocol),
            "verdict_agreement": ZoomVerdictAgreement(self.protocol, artifact_words=self.artifact_words),
            "coverage": ZoomCoverage(self.protocol, max_box_fraction=self.max_box_fraction),
        }

    def score(self, rows: Rows) -> list[float | None]:
        weighted = [
            (w, part.score(rows))
            for name, part in self._parts.items()
            if (w := float(self.weights.get(name, 1.0))) > 0
        ]
        out: list[float | None] = []
        for i in range(rows.n):
            pairs = [(w, scores[i]) for w, scores in weighted if scores[i] is not None]
            total = sum(w for w, _ in pairs)
            out.append(sum(w * v for w, v in pairs) / total if pairs else None)
        return out
