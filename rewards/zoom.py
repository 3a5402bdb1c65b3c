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

from rewards._columns import as_label, inside, usable
from rewards._decode import Frame, Region
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


@dataclass
class ZoomValidCrops(RewardTerm):
    """Share of shown regions whose box and crop window are valid (see module docstring)."""

    name: str = "zoom_valid_crops"

    def score(self, rows: Rows) -> list[float | None]:
        return [self._one(regions, frame) for regions, frame in zip(rows.regions(), rows.frames())]

    def _one(self, regions: list[Region] | None, frame: Frame) -> float | None:
        if not regions or frame is None:
            return None
        size = frame[0]
        min_w, min_h = min(self.protocol.crop.min_side, size[0]), min(self.protocol.crop.min_side, size[1])
        valid = sum(
            box is not None and inside(box, size)
            and window is not None and usable(window) and inside(window, size)
            and window[2] - window[0] >= min_w and window[3] - window[1] >= min_h
            for box, window in regions
        )
        return valid / len(regions)


@dataclass
class ZoomCitations(RewardTerm):
    """Share of cited regions that exist (see module docstring)."""

    name: str = "zoom_citations"

    def score(self, rows: Rows) -> list[float | None]:
        answers = rows.answers(self.protocol, "examine", "completions")
        return [
            self._one(a, cited, n)
            for a, cited, n in zip(answers, rows.citations(self.protocol), rows.region_counts())
        ]

    def _one(self, answer: Parsed, cited: set[int], n_regions: int) -> float:
        if not answer.think or not answer.think.strip():
            return 0.0
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
        return [
            self._one(a, cited, n, pattern)
            for a, cited, n in zip(answers, rows.citations(self.protocol), rows.region_counts())
        ]

    def _one(self, answer: Parsed, cited: set[int], n_regions: int, pattern: re.Pattern) -> float:
        """``cited``: the regions the whole ``<think>`` cites."""
        if answer.verdict == "fake":
            return 1.0 if any(1 <= c <= n_regions for c in cited) else 0.0
        if answer.verdict == "real":
            if not cited:  # no sentence can cite a region then
                return 1.0
            cites = self.protocol.cited_regions
            flagged = any(pattern.search(s) and cites(s) for s in _SENTENCE_END.split(answer.think or ""))
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
            self._one(as_label(label), annotated, regions, frame)
            for label, annotated, regions, frame in zip(
                rows.column("label"), rows.annotations(), rows.regions(), rows.frames()
            )
        ]

    def _one(self, label: str | None, annotated: list[Box], regions: list[Region] | None, frame: Frame) -> float | None:
        if label != "fake" or not annotated or regions is None or frame is None:
            return None
        size = frame[0]
        limit = self.max_box_fraction * size[0] * size[1]
        counted = [
            window for box, window in regions
            if box is not None and area(box) <= limit and window is not None and usable(window)
        ]
        total, covered = covered_area(annotated, counted)
        return covered / total if total > 0 else 0.0


def covered_area(targets: list[Box], windows: list[Box]) -> tuple[float, float]:
    """``(area of the union of targets, area of that union inside the union of windows)``.

    The covered part is the union of every target-window intersection, so both figures are areas of
    unions, which :func:`union_area` computes exactly. Most rows have one or two annotated boxes and
    disjoint crops, so the pairwise intersections are few and mostly take its fast paths.
    """
    pieces = []
    for t in targets:
        for w in windows:
            x1, y1, x2, y2 = max(t[0], w[0]), max(t[1], w[1]), min(t[2], w[2]), min(t[3], w[3])
            if x1 < x2 and y1 < y2:
                pieces.append([x1, y1, x2, y2])
    total = union_area(targets)
    return total, min(union_area(pieces), total)  # min: float rounding must never cover over 100%


def union_area(boxes: list[Box]) -> float:
    """Exact area of the union of well-formed boxes.

    One or two boxes by inclusion-exclusion, pairwise disjoint boxes by their sum; otherwise a sweep
    over vertical slabs cut at every box edge: within a slab each box is a y-interval, so the area is
    slab width times merged lengths.
    """
    if len(boxes) <= 2:
        if not boxes:
            return 0.0
        if len(boxes) == 1:
            return area(boxes[0])
        a, b = boxes
        return area(a) + area(b) - area([max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])])
    if not any(
        a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3] for i, a in enumerate(boxes) for b in boxes[i + 1 :]
    ):
        return sum(map(area, boxes))
    xs = sorted({x for b in boxes for x in (b[0], b[2])})
    total = 0.0
    for x0, x1 in zip(xs, xs[1:]):
        spans = _merge([(b[1], b[3]) for b in boxes if b[0] <= x0 and b[2] >= x1])
        total += (x1 - x0) * sum(hi - lo for lo, hi in spans)
    return total


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


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
        weights = [w for w, _ in weighted]
        out: list[float | None] = []
        for values in zip(*(scores for _, scores in weighted)):
            total = weighted_sum = 0.0
            for w, v in zip(weights, values):
                if v is not None:
                    total += w
                    weighted_sum += w * v
            out.append(weighted_sum / total if total else None)  # every weight here is > 0
        return out
