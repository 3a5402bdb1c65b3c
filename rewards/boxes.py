"""Box rewards for the locate answer (query 1): ``box_iou`` (the paper's) and ``box_f1`` (one-to-one).

Both parse the ``<boxes>`` of the locate answer, decode them from the model's coordinate frame to
original pixels with the row's ``image_size`` and ``coord_frame``, and compare them with the
annotated ``boxes``. Rules shared by both (and stated in docs/rewards.md), the None rules first: they
read only the prompt's columns, so a None is the same for every completion of a group:

* a row whose label is not "real"/"fake" -> None;
* fake image without a usable annotated box -> None (nothing to compare with);
* unusable ``image_size``/``coord_frame`` (zeros, NaN, junk) on an annotated row -> None;
* with ``strict`` (the default) a locate answer that is not exactly the grammar -> 0.0 (a lenient
  parse reads the first of repeated ``<boxes>`` tags);
* unparseable or missing ``<boxes>`` -> 0.0, whatever the label;
* an image with usable annotated boxes, real or fake, is scored against them: real images may carry
  annotated regions too (the cues their explanation cites; in the paper's data 99.5% of images have
  boxes), and the place to look is the same task whatever the verdict;
* real image without a usable annotated box: no box predicted -> ``real_empty`` (1.0), any box ->
  ``real_boxes`` (0.0);
* annotated image, empty box list -> 0.0;
* a predicted box that is not a valid box after decoding (inverted, zero-area, non-finite) stays in
  the count with IoU 0, so junk boxes dilute the score instead of disappearing.
"""

from __future__ import annotations

from dataclasses import dataclass

from rewards._columns import as_label, real_number
from rewards._term import RewardTerm, Rows, Source, check_flag, check_stage_source
from zoomin.boxes import Box, match_boxes, mean_best_iou
from zoomin.protocol import Parsed


@dataclass
class _BoxTerm(RewardTerm):
    source: Source = "auto"
    """Locate answers are read from ``locate_completions`` when the batch has it (joint stage)."""
    real_empty: float = 1.0
    """Reward for predicting no box on a real image without annotated boxes."""
    real_boxes: float = 0.0
    """Reward for predicting any box on a real image without annotated boxes."""
    strict: bool = True
    """Score 0.0 for a locate answer that is not exactly the grammar (see the module docstring)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_stage_source(self.name, "locate", self.source)
        check_flag(self.name, "strict", self.strict)
        for field_name in ("real_empty", "real_boxes"):
            if real_number(getattr(self, field_name)) is None:
                raise ValueError(f"reward {self.name!r}: {field_name} must be a finite number")

    def score(self, rows: Rows) -> list[float | None]:
        answers = rows.answers(self.protocol, "locate", self.source)
        decoded = rows.decoded_boxes(self.protocol, self.source)
        return [
            self._one(a, pred, as_label(label), gt, frame is not None)
            for a, pred, label, gt, frame in zip(
                answers, decoded, rows.column("label"), rows.annotations(), rows.frames()
            )
        ]

    def _one(
        self, answer: Parsed, pred: list[Box | None] | None, label: str | None, annotated: list[Box], framed: bool
    ) -> float | None:
        """``pred``: the answer's boxes decoded (None only when it has none or the row has no usable frame,
        both settled before it is read)."""
        if label is None or (not annotated and label == "fake") or (annotated and not framed):
            return None
        if answer.boxes is None or (self.strict and not answer.strict):
            return 0.0
        if not annotated:
            return self.real_boxes if answer.boxes else self.real_empty
        if not answer.boxes:
            return 0.0
        return self.measure(pred, annotated)  # type: ignore[arg-type]  (framed, with boxes)

    def measure(self, pred: list[Box | None], gt: list[Box]) -> float:
        """Score decoded predictions (None = invalid box) against a non-empty annotation."""
        raise NotImplementedError


@dataclass
class BoxIoU(_BoxTerm):
    """The paper's IoU reward: mean over predicted boxes of the best IoU with any annotated box.

    Range [0, 1] (real-image scores are ``real_empty``/``real_boxes``). Gameable by repetition: one
    good box copied four times scores like one good box, and a single box fitting the largest
    artifact ignores the others. Use ``box_f1`` where that matters.
    """

    name: str = "box_iou"

    def measure(self, pred: list[Box | None], gt: list[Box]) -> float:
        valid = [p for p in pred if p is not None]
        return mean_best_iou(valid, gt) * len(valid) / len(pred)


@dataclass
class BoxF1(_BoxTerm):
    """One-to-one box reward: ``2 * (sum of IoUs of Hungarian-matched pairs) / (n_pred + n_gt)``.

    Each annotated box is claimed at most once (:func:`zoomin.boxes.match_boxes`), unmatched
    predictions and missed annotations both cost, so duplicated boxes, box spam and one giant box
    over several artifacts do not pay. Range [0, 1]; 1 only for exactly the annotated boxes.
    """

    name: str = "box_f1"

    def measure(self, pred: list[Box | None], gt: list[Box]) -> float:
        matched = match_boxes([p for p in pred if p is not None], gt)
        return 2.0 * sum(m[2] for m in matched) / (len(pred) + len(gt))
