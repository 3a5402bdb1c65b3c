"""The paper's four consistency filters, each turning a failure into a reason a person can read.

1. *The explanations agree.* Each explanation implies a verdict (the rule is in
   :class:`VerdictReader`); the two must imply the same one, and it must be the known label.
2. *Every cue gets a box.* The grounder's entries are matched to the cues by their labels and
   decoded into original-image pixels with the grounder family's :class:`~zoomin.codecs.BoxCodec`.
3. *Boxes over half of the image are dropped* (a box that covers most of the picture points at
   nothing); a cue left without a box then fails filter 2.
4. *Two grounding runs overlap.* Per cue, the boxes of the two runs are matched one to one
   (Hungarian, as :func:`zoomin.boxes.match_boxes`) and a pair counts when its IoU is above
   ``min_iou``; a cue with no such pair rejects the record. The default 0.5 is the usual detection
   convention for "the same object" (a detection matches a ground-truth box at IoU 0.5): two samples
   of the grounder that agree at that level locate the same region, and a cue whose two runs do not
   is one the grounder could not pin down. The first run's matched boxes are kept; unmatched ones
   are dropped, since the grounder itself did not confirm them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from zoomin.annotate.prompts import GroundedBox
from zoomin.boxes import Box, area, clamp_box, iou, match_boxes
from zoomin.codecs import BoxCodec
from zoomin.protocol import ProtocolConfig

_NEGATIONS = frozenset({"not", "no", "never", "nor", "neither", "without", "hardly", "cannot", "than", "instead"})
_WINDOW = 4
"""Words before a label word that are searched for a negation ("shows no sign of being generated")."""
_CLAUSE_END = re.compile(r"[.!?;:,]|\bbut\b", re.IGNORECASE)


class VerdictReader:
    """The verdict an explanation's text implies.

    The rule: find every label word of the protocol (``real``/``fake`` and their aliases, e.g.
    "authentic", "AI-generated", "synthetic"; whole words, any case, the longest alias first, so
    "not fake" and "AI-generated" are read as such). A word is negated when "not", "no", "never",
    "without", "than", "instead" (as in "rather than real", "instead of a real photo") or a word
    ending in "n't" stands among the four words before it in the same clause; negation flips it.
    The *last* such word decides, because the explainer is asked to end with its conclusion and
    explanations discuss the other side first ("no region shows generator artifacts; the image is
    real"). No label word at all implies no verdict.
    """

    def __init__(self, protocol: ProtocolConfig | None = None) -> None:
        protocol = protocol or ProtocolConfig()
        words = {w.lower(): "real" for w in [protocol.real_word, *protocol.real_aliases]}
        words.update({w.lower(): "fake" for w in [protocol.fake_word, *protocol.fake_aliases]})
        self._words = words
        alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        self._pattern = re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.IGNORECASE)

    @property
    def words(self) -> list[str]:
        return sorted(self._words)

    def __call__(self, text: str) -> str | None:
        verdict = None
        for match in self._pattern.finditer(text):
            verdict = self._words[match.group(0).lower()]
            if self._negated(text[: match.start()]):
                verdict = "fake" if verdict == "real" else "real"
        return verdict

    @staticmethod
    def _negated(before: str) -> bool:
        clause = _CLAUSE_END.split(before)[-1]
        tokens = re.findall(r"[a-z']+", clause.lower())[-_WINDOW:]
        return any(t in _NEGATIONS or t.endswith("n't") for t in tokens)


class Rejected(Exception):
    """A record that fails a filter (or cannot be read); ``stage`` names which, ``reason`` says why."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


def check_verdicts(label: str, texts: Sequence[str], reader: VerdictReader) -> None:
    """Filter 1: raise :class:`Rejected` unless both explanations imply the known label."""
    verdicts = [reader(text) for text in texts]
    for i, verdict in enumerate(verdicts, start=1):
        if verdict is None:
            raise Rejected("verdict", f"explanation {i} states no verdict "
                                      f"(it uses none of the words {', '.join(reader.words)})")
    first, second = verdicts
    if first != second:
        raise Rejected("verdict", f"the two explanations disagree: the first reads as {first}, the second as {second}")
    if first != label:
        raise Rejected("verdict", f"both explanations read as {first}, but the image is labelled {label}")


def match_cue(label: str, cues: Sequence[str]) -> int | None:
    """Index of the cue a grounding entry's label names, or None.

    Grounders copy the cue, shorten it, or answer with its number: exact text first (ignoring case
    and punctuation), then a cue number ("2", "cue 2"), then one cue containing the label or
    contained in it, then a close spelling (difflib ratio 0.75).
    """
    norms = [_norm(c) for c in cues]
    text = _norm(label)
    if not text:
        return None
    if text in norms:
        return norms.index(text)
    number = re.fullmatch(r"(?:cue|region)?\s*(\d{1,3})", text)
    if number and 1 <= int(number.group(1)) <= len(cues):
        return int(number.group(1)) - 1
    containing = [i for i, n in enumerate(norms) if text in n or n in text]
    if len(containing) == 1:
        return containing[0]
    close = difflib.get_close_matches(text, norms, n=1, cutoff=0.75)
    return norms.index(close[0]) if close else None


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.casefold()).split())


@dataclass
class Placed:
    """One grounding run's boxes per cue, in original-image pixels, and what was dropped."""

    boxes: list[list[Box]]
    oversized: list[int]
    """Per cue, boxes dropped for covering over ``max_box_fraction`` of the image."""
    empty: list[int]
    """Per cue, boxes that had no area left inside the image."""
    unknown_labels: list[str] = field(default_factory=list)
    """Labels that named no cue."""
    unusable: int = 0
    """Entries that were not ``{"bbox_2d": [4 numbers], "label": text}``."""


def place(
    entries: Sequence[GroundedBox],
    cues: Sequence[str],
    image_size: tuple[int, int],
    codec: BoxCodec,
    max_box_fraction: float,
    unusable: int = 0,
) -> Placed:
    """Decode a grounding run into original pixels (clamped to the image) and sort it by cue.

    ``codec.decode`` maps the grounder's coordinates from the frame of the image *as sent*: the
    pipeline sends the image resized to the size the grounder's processor keeps, so for Qwen2.5-VL
    that frame is the sent image's pixel grid, and for the 0-1000 families the grid over it.
    """
    placed = Placed([[] for _ in cues], [0] * len(cues), [0] * len(cues), unusable=unusable)
    image_area = image_size[0] * image_size[1]
    for entry in entries:
        i = match_cue(entry.label, cues)
        if i is None:
            placed.unknown_labels.append(entry.label)
            continue
        box = [round(v, 2) for v in clamp_box(codec.decode(entry.coords, image_size), image_size)]
        if box[2] <= box[0] or box[3] <= box[1]:
            placed.empty[i] += 1
        elif area(box) > max_box_fraction * image_area:
            placed.oversized[i] += 1
        else:
            placed.boxes[i].append(box)
    return placed


def agreed_boxes(runs: Sequence[Placed], cues: Sequence[str], min_iou: float) -> tuple[list[Box], list[str]]:
    """Filters 2-4: the first run's boxes confirmed by the second, and one cue note per box;
    :class:`Rejected` when a cue has no box in a run or its two runs do not overlap."""
    boxes: list[Box] = []
    notes: list[str] = []
    for i, cue in enumerate(cues):
        for k, run in enumerate(runs, start=1):
            if not run.boxes[i]:
                raise Rejected("ground", f"cue {i + 1} ({cue!r}) got no box in grounding run {k}{_why_no_box(run, i)}")
        first, second = runs[0].boxes[i], runs[1].boxes[i]
        pairs = match_boxes(first, second, min_iou)
        if not pairs:
            best = max(iou(a, b) for a in first for b in second)
            raise Rejected("overlap", f"cue {i + 1} ({cue!r}): the two grounding runs do not overlap "
                                      f"(best IoU {best:.2f}, need above {min_iou:g})")
        for a, _, _ in sorted(pairs):
            boxes.append(first[a])
            notes.append(cue)
    return boxes, notes


def _why_no_box(run: Placed, i: int) -> str:
    details = []
    if run.oversized[i]:
        details.append(f"{run.oversized[i]} box(es) covering over the allowed share of the image were dropped")
    if run.empty[i]:
        details.append(f"{run.empty[i]} box(es) lay outside the image")
    if run.unknown_labels:
        shown = ", ".join(repr(label[:40]) for label in run.unknown_labels[:3])
        details.append(f"labels naming no cue: {shown}")
    if run.unusable:
        details.append(f"{run.unusable} entries were not {{bbox_2d, label}}")
    return f" ({'; '.join(details)})" if details else ""
