"""The evaluation metrics of the ZoomIn paper, plus the diagnostics a two-stage model needs.

* verdict: accuracy, F1 with *fake* as the positive class, AUROC of the fake probability;
* localisation: the paper's IoU (mean over predicted boxes of the best IoU with an annotated box),
  averaged over every image that has annotations (``iou``: in the paper's data real images carry
  boxes too) and over annotated fakes alone (``iou_fake``);
* explanation: corpus BLEU-2 and mean ROUGE-L F1 against the reference (torchmetrics; ROUGE-L
  without stemming needs no nltk data, so this runs offline);
* two-stage diagnostics: how often query 2 changed query 1's verdict and how often the change was
  right, and the format-error rate of each query (answers whose parse is not strict).

An image with no parseable verdict counts as *wrong* for accuracy and F1 (its prediction is the
opposite of the label), so a model cannot raise its scores by answering garbage when unsure.
Undefined values (AUROC with one class, IoU without annotated fakes) are None, not 0.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import torch
from torchmetrics.functional.classification import binary_auroc, binary_f1_score
from torchmetrics.text import BLEUScore, ROUGEScore

from zoomin.boxes import Box, mean_best_iou
from zoomin.detector import Detection


def verdict_metrics(labels: Sequence[str], verdicts: Sequence[str | None], scores: Sequence[float]) -> dict:
    """Accuracy, F1 (fake positive), AUROC (from ``scores`` = P(fake)) and the no-verdict rate."""
    target = torch.tensor([label == "fake" for label in labels], dtype=torch.long)
    pred = torch.tensor([v == "fake" if v is not None else label != "fake" for v, label in zip(verdicts, labels)],
                        dtype=torch.long)
    both_classes = 0 < int(target.sum()) < len(target)
    return {
        "accuracy": float((pred == target).float().mean()),
        "f1": float(binary_f1_score(pred, target)),
        "auroc": float(binary_auroc(torch.tensor(scores, dtype=torch.float), target)) if both_classes else None,
        "no_verdict_rate": sum(v is None for v in verdicts) / len(verdicts),
    }


def localisation_iou(
    labels: Sequence[str],
    predicted: Sequence[Sequence[Box]],
    annotated: Sequence[Sequence[Box]],
    among: Collection[str] = ("fake",),
) -> float | None:
    """The paper's IoU averaged over the annotated images whose label is in ``among`` (no predicted
    box scores 0); None when there are none."""
    values = [mean_best_iou(p, a) for label, p, a in zip(labels, predicted, annotated) if label in among and a]
    return sum(values) / len(values) if values else None


def text_metrics(explanations: Sequence[str | None], references: Sequence[str]) -> dict:
    """Corpus BLEU-2 and mean ROUGE-L F1 of the explanations (a missing one counts as empty)."""
    preds = [e or "" for e in explanations]
    bleu = BLEUScore(n_gram=2)(preds, [[r] for r in references])
    rouge = ROUGEScore(rouge_keys="rougeL")(preds, list(references))["rougeL_fmeasure"]
    return {"bleu2": float(bleu), "rougeL": float(rouge)}


def verdict_change(labels: Sequence[str], preliminary: Sequence[str | None], final: Sequence[str | None]) -> dict:
    """How query 2 revised query 1, over images where both gave a verdict.

    ``change_rate``: share of those images whose final verdict differs from the preliminary one;
    ``change_correct_rate``: share of the changes that ended on the right label (None if no change).
    ``preliminary_accuracy`` is the single-round baseline (missing verdict counts wrong).
    """
    both = [(label, p, f) for label, p, f in zip(labels, preliminary, final) if p is not None and f is not None]
    changed = [(label, f) for label, p, f in both if p != f]
    return {
        "preliminary_accuracy": sum(p == label for label, p in zip(labels, preliminary)) / len(labels),
        "change_rate": len(changed) / len(both) if both else None,
        "change_correct_rate": sum(f == label for label, f in changed) / len(changed) if changed else None,
    }


def compute_metrics(
    detections: Sequence[Detection],
    labels: Sequence[str],
    annotated: Sequence[Sequence[Box]],
    references: Sequence[str],
) -> dict:
    """Every metric for one evaluation pass; ``annotated`` boxes are in the detections' pixel frame."""
    if not detections or not len(detections) == len(labels) == len(annotated) == len(references):
        raise ValueError(f"need one label, box list and reference per detection, got {len(detections)} detections, "
                         f"{len(labels)} labels, {len(annotated)} box lists, {len(references)} references")
    verdicts = [d.verdict for d in detections]
    return {
        "n": len(detections),
        **verdict_metrics(labels, verdicts, [d.score for d in detections]),
        "iou": localisation_iou(labels, [d.boxes for d in detections], annotated, among=("real", "fake")),
        "iou_fake": localisation_iou(labels, [d.boxes for d in detections], annotated),
        **text_metrics([d.explanation for d in detections], references),
        **verdict_change(labels, [d.preliminary_verdict for d in detections], verdicts),
        "locate_format_error_rate": sum(not d.locate_strict for d in detections) / len(detections),
        "examine_format_error_rate": sum(not d.examine_strict for d in detections) / len(detections),
        "locate_cut_rate": sum(d.locate_cut for d in detections) / len(detections),
        "examine_cut_rate": sum(d.examine_cut for d in detections) / len(detections),
    }
