"""Evaluate a ZoomIn detector on MagniFake records, optionally under image perturbations.

:func:`evaluate` is the library entry point (the CLI and the demo call it). Robustness conditions
re-run the whole two-stage detection on perturbed copies of every image: JPEG re-compression at
quality 50 (the usual laundering of a generated image) and down-scaling by half (which also
scales the annotated boxes, so IoU is measured in the pixels the model saw).

A record whose image no longer decodes (records are validated when loaded; files can change after)
is left out of that condition's metrics and listed under ``skipped`` with its reason, so one bad
file never costs the evaluation of all the others.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

from PIL import Image
from tqdm import tqdm

from zoomin.data import Record
from zoomin.detector import ZoomInDetector
from zoomin.images import ImageProblem
from zoomin.metrics import compute_metrics

JPEG_QUALITY = 50
DOWNSCALE = 0.5


def jpeg(image: Image.Image, quality: int = JPEG_QUALITY) -> Image.Image:
    """``image`` after one JPEG encode/decode round trip."""
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def downscale(image: Image.Image, factor: float = DOWNSCALE) -> Image.Image:
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.BICUBIC)


CONDITIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    f"jpeg_q{JPEG_QUALITY}": jpeg,
    f"downscale_{DOWNSCALE}": downscale,
}
"""Robustness conditions by name; "clean" (the unmodified images) always runs first."""

TABLE_ROWS = (
    "accuracy", "f1", "auroc", "iou", "bleu2", "rougeL", "preliminary_accuracy", "change_rate",
    "change_correct_rate", "no_verdict_rate", "locate_format_error_rate", "examine_format_error_rate",
)  # fmt: skip


def evaluate(
    detector: ZoomInDetector,
    records: Sequence[Record],
    *,
    batch_size: int = 8,
    robustness: bool = False,
    progress: bool = True,
) -> dict:
    """Run the detector over ``records`` and return ``{"metrics": {condition: {...}}, "predictions": [...],
    "skipped": [...]}``.

    ``predictions`` holds the clean pass per record (id, label and the detection without images);
    ``skipped`` one ``{"id", "condition", "reason"}`` per record left out of a condition because its
    image did not decode.
    """
    if not records:
        raise ValueError("no records to evaluate")
    conditions: dict[str, Callable[[Image.Image], Image.Image] | None] = {"clean": None}
    if robustness:
        conditions.update(CONDITIONS)
    metrics, predictions, skipped = {}, [], []
    with tqdm(total=len(records) * len(conditions), desc="eval", unit="img", disable=not progress) as bar:
        for name, perturb in conditions.items():
            detections, annotated, kept = [], [], []
            for start in range(0, len(records), batch_size):
                chunk = records[start : start + batch_size]
                images = []
                for record in chunk:
                    try:
                        original = record.load_image()
                    except ImageProblem as e:
                        skipped.append({"id": record.id, "condition": name, "reason": str(e)})
                        continue
                    image = perturb(original) if perturb else original
                    sx, sy = image.width / original.width, image.height / original.height
                    annotated.append([[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in record.boxes])
                    images.append(image)
                    kept.append(record)
                if images:
                    detections += detector.detect(images, batch_size=batch_size)
                bar.update(len(chunk))
            if not kept:
                raise ValueError(f"no record's image could be decoded ({skipped[-1]['reason']})")
            metrics[name] = compute_metrics(detections, [r.label for r in kept], annotated,
                                            [r.explanation for r in kept])
            if name == "clean":
                predictions = [{"id": r.id, "label": r.label, **d.to_dict()} for r, d in zip(kept, detections)]
    return {"metrics": metrics, "predictions": predictions, "skipped": skipped}


def format_table(metrics: dict[str, dict]) -> str:
    """A markdown table: one row per metric, one column per condition."""
    names = list(metrics)
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for row in TABLE_ROWS:
        cells = [_cell(metrics[n].get(row)) for n in names]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
