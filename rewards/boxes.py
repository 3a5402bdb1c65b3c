"""Box rewards for the locate answer (query 1): ``box_iou`` (the paper's) and ``box_f1`` (one-to-one).

Both parse the ``<boxes>`` of the locate answer, decode them from the model's coordinate frame to
original pixels with the row's ``image_size`` and ``coord_frame``, and compare them with the
annotated ``boxes``. Rules shared by both (and stated in docs/rewards.md):

* unparseable or missing ``<boxes>`` -> 0.0, whatever the label;
* an image with usable annotated boxes, real or fake, is scored against them: real images may carry
  annotated regions too (the cues their explanation cites; in the paper's data 99.5% of images have
  boxes), and the place to look is the same task whatever the verdict;
* real image without a usable annotated box: no box predicted -> ``real_empty`` (1.0), any box ->
  ``real_boxes`` (0.0);
* fake image without a usable annotated box -> None (nothing to compare with; TRL averages it away);
* annotated image, empty box list -> 0.0;
* a predicted box that is not a valid box after decoding (inverted, zero-area, non-finite) stays in
  the count with IoU 0, so junk boxes dilute the score instead of disappearing;
* unusable ``image_size``/``coord_frame`` (zeros, NaN, junk) on an annotated row -> None;
* a row whose label is not "real"/"fake" -> None.
"""

from __future__ import annotations

from dataclasses import dataclass

from rewards._columns import as_label, real_number
from rewards._term import RewardTerm, Rows, Source, check_stage_source
from zoomin.boxes import Box, match_boxes, mean_best_iou


@dataclass
class _BoxTerm(RewardTerm):
    source: Source = "auto"
    """Locate answers are read from ``locate_completions`` when the batch has it (joint stage)."""
    real_empty: float = 1.0
    """Reward for predicting no box on a real image without annotated boxes."""
    real_boxes: float = 0.0
    """Reward for predicting any box on a real image without annotated boxes."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_stage_source(self.name, "locate", self.source)
        for field_name in ("real_empty", "real_boxes"):
            if real_number(getattr(self, field_name)) is None:
                raise ValueError(f"reward {self.name!r}: {field_name} must be a finite number")

    def score(self, rows: Rows) -> list[float | None]:
        answers = rows.answers(self.protocol, "locate", self.source)
        decoded = rows.decoded_boxes(self.protocol, self.source)
        return [
            self._one(a.boxes, pred, as_label(label), gt)
            for a, pred, label, gt in zip(answers, decoded, rows.column("label"), rows.annotations())
        ]

    def _one(
        self, boxes: list[list[float]] | None, pred: list[Box | None] | None, label: str | None, annotated: list[Box]
    ) -> float | None:
        """``boxes`` as parsed (model coordinates), ``pred`` the same decoded (None: no usable frame)."""
        if label is None:
            return None
        if boxes is None:
            return 0.0
        if not annotated:
            if label == "real":
                return self.real_boxes if boxes else self.real_empty
            return None
        if not boxes:
            return 0.0
        if pred is None:
            return None
        return self.measure(pred, annotated)

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
