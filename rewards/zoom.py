"""Zoom-crop consistency: do the crops, the examine explanation and its verdict fit together?

The examine answer (``completions``) is judged against what the model was shown: ``region_boxes``
(the boxes introduced as "Region 1", "Region 2", ... in model coordinates, in order) and
``crop_windows`` (the integer original-pixel windows cropped for them, same order). In the examine
stage these are prompt columns (crops of the annotations, of a frozen locator's boxes, or of the
policy's one locate answer per image), the same for a whole group; in the joint stage they come from
each completion's own locate answer (``locate_completions``). Four parts, each a registry term of its
own, and their weighted mean ``zoom_consistency``:

``zoom_valid_crops``
    Share of the crops asked for that are valid and distinct. A shown region counts when its box
    decodes (``image_size``/``coord_frame``) to a well-formed box inside the image, its crop window
    lies inside the image with both sides at least ``min(protocol.crop.min_side, image side)``, and
    the window is not a near copy (IoU >= :data:`DUPLICATE_IOU`) of an earlier counted one. The
    denominator is every shown region plus, when the batch has ``locate_completions``, every box of
    that answer the zoom step dropped (invalid, or empty once clamped to the image): junk boxes never
    reach the region columns, so only the answer shows them. A locate answer without a box list: 0.0.
    Nothing shown and nothing dropped: 1.0 when the row has no usable annotated box (no crop was
    called for), else 0.0. Unusable image size or frame -> None.
``zoom_citations``
    Share of the distinct "Region i" citations in ``<think>`` with ``1 <= i <= len(region_boxes)``;
    an explanation citing nothing scores 1.0 (nothing invented), no explanation scores 0.0.
``zoom_verdict_agreement``
    Whether the verdict and what ``<think>`` says about the cited regions agree, read sentence by
    sentence (see :func:`tone`): a sentence *flags* when it calls something an artifact (an
    ``artifact_words`` prefix, or a negated ``clean_words`` prefix: "not natural"), *clears* when it
    only negates artifact words ("no blur", "without any smearing", "blur-free") or uses clean words
    ("natural skin texture"), and is neutral otherwise. A "fake" verdict scores 1.0 when some sentence
    citing an existing region does not clear it (clearing a region is no evidence of a fake); a
    "real" verdict scores 1.0 unless a sentence citing a region flags. No verdict -> 0.0.
``zoom_coverage``
    How well the crops cover the annotated artifacts, and only them: recall times precision. Recall
    is the share of the annotated area (union of the row's ``boxes``) inside the union of the crop
    windows, counting a window only if its region box decodes to a valid box of at most
    ``max_box_fraction`` of the image area (the data set drops larger annotations). Precision is the
    share of the union of the valid region boxes that lies on annotated area; it is measured on the
    region boxes, not the windows, because the crop policy pads and grows every window (a window
    around the annotation itself is never all artifact), while the region box is the policy's
    choice. Without precision, four quadrant boxes, each under half the image, covered any artifact
    in full. Real images and fakes without usable annotations -> None; unusable image size or frame
    -> None.

``zoom_consistency`` averages the parts that are not None with ``weights`` (default 1 each); None
when all are (only for the prompt's reasons: every part's None is).

With ``strict`` (the default) the parts that read the examine answer, ``zoom_citations`` and
``zoom_verdict_agreement``, score 0.0 for an answer that is not exactly the examine grammar. The
other two read no answer text, only the crops made.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from rewards._columns import as_label, inside, usable
from rewards._decode import Frame, Region
from rewards._term import RewardTerm, Rows, check_flag
from zoomin.boxes import Box, area, clamp_box, iou
from zoomin.protocol import Parsed

ARTIFACT_WORDS = (
    "artifact", "artefact", "distort", "unnatural", "inconsisten", "smear", "warp", "blur", "garbl",
    "malform", "deform", "checkerboard", "anomal", "implausib", "suspicious", "manipulat",
)
"""Word prefixes that describe a region as showing generation artifacts."""

CLEAN_WORDS = (
    "natural", "realistic", "plausib", "consistent", "coherent", "authentic", "genuine", "intact", "normal",
    "correct", "clean",
)
"""Word prefixes that describe a region as free of artifacts. Matched at the start of a word, so
"unnatural", "implausible" and "inconsistent" are not clean words (they are artifact words)."""

NEGATIONS = frozenset({
    "no", "not", "without", "never", "nor", "neither", "none", "nothing", "free", "lack", "lacks", "lacking",
    "absent", "absence", "cannot",
})
"""Words that negate every cue word after them in their clause ("no visible blur", "free of
artifacts"); words ending in "n't" do too, and a cue word ending in "-free" is negated itself."""

DUPLICATE_IOU = 0.9
"""A crop window overlapping an earlier counted window at least this much shows nearly the same
pixels again and does not count as a valid crop."""

ZOOM_PARTS = ("valid_crops", "citations", "verdict_agreement", "coverage")
FLAGS, NEUTRAL, CLEARS = 1, 0, -1
"""The :func:`tone` of a sentence."""
_SENTENCE_END = re.compile(r"[.!?;\n]+")
_CLAUSE_END = re.compile(r"[,:()]|\b(?:but|however|yet|although|though|whereas|while)\b", re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")


@dataclass
class ZoomValidCrops(RewardTerm):
    """Share of the crops asked for that are valid and distinct (see module docstring)."""

    name: str = "zoom_valid_crops"

    def score(self, rows: Rows) -> list[float | None]:
        if rows.has("locate_completions"):
            answers: list[Parsed | None] = list(rows.answers(self.protocol, "locate", "locate_completions"))
            located: list[list[Box | None] | None] = rows.decoded_boxes(self.protocol, "locate_completions")
        else:
            answers, located = [None] * rows.n, [None] * rows.n
        return [
            self._one(*row)
            for row in zip(rows.regions(), rows.frames(), rows.annotations(), answers, located)
        ]

    def _one(
        self, regions: list[Region] | None, frame: Frame, annotated: list[Box], answer: Parsed | None,
        located: list[Box | None] | None,
    ) -> float | None:
        """``answer``/``located``: the locate answer and its boxes decoded, when the batch has one."""
        if regions is None or frame is None:
            return None
        if answer is not None and answer.boxes is None:
            return 0.0
        size = frame[0]
        dropped = sum(box is None or not usable(clamp_box(box, size)) for box in located or ())
        if not regions and not dropped:
            return 0.0 if annotated else 1.0
        min_w, min_h = min(self.protocol.crop.min_side, size[0]), min(self.protocol.crop.min_side, size[1])
        counted: list[list[float]] = []
        for box, window in regions:
            if (
                box is not None and inside(box, size)
                and window is not None and usable(window) and inside(window, size)
                and window[2] - window[0] >= min_w and window[3] - window[1] >= min_h
                and all(iou(window, w) < DUPLICATE_IOU for w in counted)
            ):
                counted.append(window)
        return len(counted) / (len(regions) + dropped)


@dataclass
class ZoomCitations(RewardTerm):
    """Share of cited regions that exist (see module docstring)."""

    name: str = "zoom_citations"
    strict: bool = True
    """Score 0.0 for an examine answer that is not exactly the grammar."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_flag(self.name, "strict", self.strict)

    def score(self, rows: Rows) -> list[float | None]:
        answers = rows.answers(self.protocol, "examine", "completions")
        return [
            self._one(a, cited, n)
            for a, cited, n in zip(answers, rows.citations(self.protocol), rows.region_counts())
        ]

    def _one(self, answer: Parsed, cited: set[int], n_regions: int) -> float:
        if (self.strict and not answer.strict) or not answer.think or not answer.think.strip():
            return 0.0
        if not cited:
            return 1.0
        return sum(1 <= c <= n_regions for c in cited) / len(cited)


@dataclass
class ZoomVerdictAgreement(RewardTerm):
    """Whether the verdict and what the explanation says of the cited regions agree (see module docstring)."""

    name: str = "zoom_verdict_agreement"
    artifact_words: tuple[str, ...] = ARTIFACT_WORDS
    clean_words: tuple[str, ...] = CLEAN_WORDS
    strict: bool = True
    """Score 0.0 for an examine answer that is not exactly the grammar."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_flag(self.name, "strict", self.strict)
        self.artifact_words = _prefixes(self.name, "artifact_words", self.artifact_words)
        self.clean_words = _prefixes(self.name, "clean_words", self.clean_words)

    def score(self, rows: Rows) -> list[float | None]:
        answers = rows.answers(self.protocol, "examine", "completions")
        return [
            self._one(a, cited, n)
            for a, cited, n in zip(answers, rows.citations(self.protocol), rows.region_counts())
        ]

    def _one(self, answer: Parsed, cited: set[int], n_regions: int) -> float:
        """``cited``: the regions the whole ``<think>`` cites (a sentence can cite only those)."""
        if (self.strict and not answer.strict) or answer.verdict is None:
            return 0.0
        exists = range(1, n_regions + 1)
        if answer.verdict == "fake" and not any(c in exists for c in cited):
            return 0.0
        if answer.verdict == "real" and not cited:
            return 1.0
        cites = self.protocol.cited_regions
        for sentence in _SENTENCE_END.split(answer.think or ""):
            in_sentence = cites(sentence)
            if not in_sentence:
                continue
            if answer.verdict == "fake":
                if any(c in exists for c in in_sentence) and tone(sentence, self.artifact_words,
                                                                 self.clean_words) != CLEARS:
                    return 1.0
            elif tone(sentence, self.artifact_words, self.clean_words) == FLAGS:
                return 0.0
        return 0.0 if answer.verdict == "fake" else 1.0


def tone(sentence: str, artifact_words: tuple[str, ...], clean_words: tuple[str, ...]) -> int:
    """:data:`FLAGS` if ``sentence`` calls something an artifact, :data:`CLEARS` if it only clears
    (negated artifact words, clean words), :data:`NEUTRAL` if neither.

    Words are matched by prefix, lowercased. A negation (:data:`NEGATIONS`, "n't") covers the rest of
    its clause, clauses ending at , : ( ) and at but, however, yet, although, though, whereas, while:
    "Region 1 shows no blur, but Region 2 is smeared" flags. It is a reading of cue words, not of
    meaning: "no blur and smeared edges" clears, since the negation reaches "smeared" too.
    """
    flags = clears = False
    for clause in _CLAUSE_END.split(sentence):
        negated = False
        for word in _WORD.findall(clause.lower()):
            if word in NEGATIONS or word.endswith(("n't", "n’t")):
                negated = True
            elif word.startswith(artifact_words):
                if negated or word.endswith("-free"):
                    clears = True
                else:
                    flags = True
            elif word.startswith(clean_words):
                if negated:
                    flags = True
                else:
                    clears = True
    return FLAGS if flags else CLEARS if clears else NEUTRAL


def _prefixes(term: str, name: str, words: object) -> tuple[str, ...]:
    """``words`` as lowercased one-word prefixes, or a ValueError naming the parameter."""
    if isinstance(words, str) or not isinstance(words, (list, tuple)) or not all(
        isinstance(w, str) and w.strip() and len(w.split()) == 1 for w in words
    ):
        raise ValueError(f"reward {term!r}: {name} must be a list of single non-empty words, got {words!r}")
    return tuple(w.strip().lower() for w in words)


@dataclass
class ZoomCoverage(RewardTerm):
    """Recall times precision of the zoomed regions against the annotated artifacts (see module docstring)."""

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
        boxes = [box for box, _ in regions if box is not None]
        counted = [
            window for box, window in regions
            if box is not None and area(box) <= limit and window is not None and usable(window)
        ]
        if not boxes or not counted:
            return 0.0
        total, covered = covered_area(annotated, counted)
        boxed, on_target = covered_area(boxes, annotated)
        if total <= 0 or boxed <= 0:  # areas of usable boxes can underflow to 0 (1e-200 px wide)
            return 0.0
        return (covered / total) * (on_target / boxed)


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
    """Weighted mean of the four zoom parts that are not None for a row; None when all are (which only
    the prompt's columns decide, as for each part)."""

    name: str = "zoom_consistency"
    weights: dict[str, float] = field(default_factory=dict)
    """Per-part weights by part name (``valid_crops``, ``citations``, ``verdict_agreement``,
    ``coverage``); parts not named keep weight 1, weight 0 drops a part."""
    artifact_words: tuple[str, ...] = ARTIFACT_WORDS
    clean_words: tuple[str, ...] = CLEAN_WORDS
    max_box_fraction: float = 0.5
    strict: bool = True
    """Passed to the parts that read the examine answer (``citations``, ``verdict_agreement``)."""

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
            "citations": ZoomCitations(self.protocol, strict=self.strict),
            "verdict_agreement": ZoomVerdictAgreement(self.protocol, artifact_words=self.artifact_words,
                                                      clean_words=self.clean_words, strict=self.strict),
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
