"""Evaluate a ZoomIn detector on MagniFake records, optionally under image perturbations.

:func:`evaluate` is the library entry point (the CLI and the demo call it). Robustness conditions
re-run the whole two-stage detection on perturbed copies of every image: JPEG re-compression at
quality 50 (the usual laundering of a generated image) and down-scaling by half (which also
scales the annotated boxes, so IoU is measured in the pixels the model saw).

The clean pass also runs the paper's random-crop ablation: after the same query-1 answers, query 2
is shown crops of the same sizes as the located boxes at random places instead of the located ones
(``random_crop_accuracy``). Next to ``preliminary_accuracy`` (query 1 alone) and ``accuracy`` (both
queries), it says whether the crops, and the located crops in particular, carry the verdict.

A record whose image no longer decodes (records are validated when loaded; files can change after)
is left out of that condition's metrics and listed under ``skipped`` with its reason, so one bad
file never costs the evaluation of all the others.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from zoomin.boxes import Box
from zoomin.data import Record
from zoomin.detector import ZoomInDetector
from zoomin.images import ImageProblem
from zoomin.metrics import compute_metrics, verdict_metrics
from zoomin.protocol import ProtocolConfig
from zoomin.zoom import crop_window, zoom_factor

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
    "accuracy", "f1", "auroc", "iou", "iou_fake", "bleu2", "rougeL", "preliminary_accuracy", "random_crop_accuracy",
    "change_rate",
    "change_correct_rate", "no_verdict_rate", "locate_format_error_rate", "examine_format_error_rate",
    "locate_cut_rate", "examine_cut_rate", "zoom_factor",
)  # fmt: skip


def evaluate(
    detector: ZoomInDetector,
    records: Sequence[Record],
    *,
    batch_size: int = 8,
    robustness: bool = False,
    random_crops: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Run the detector over ``records`` and return ``{"metrics": {condition: {...}}, "predictions": [...],
    "skipped": [...]}``.

    ``predictions`` holds the clean pass per record (id, label and the detection without images);
    ``skipped`` one ``{"id", "condition", "reason"}`` per record left out of a condition because its
    image did not decode. With ``random_crops`` the clean metrics add ``random_crop_accuracy`` (one
    more query-2 pass, with crops placed by ``seed``; see the module docstring).
    """
    if not records:
        raise ValueError("no records to evaluate")
    conditions: dict[str, Callable[[Image.Image], Image.Image] | None] = {"clean": None}
    if robustness:
        conditions.update(CONDITIONS)
    rng = np.random.default_rng(seed)
    metrics, predictions, skipped = {}, [], []
    with tqdm(total=len(records) * len(conditions), desc="eval", unit="img", disable=not progress) as bar:
        for name, perturb in conditions.items():
            detections, annotated, kept, ablated = [], [], [], []
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
                    located = detector.locate_only(images, batch_size=batch_size)
                    detections += detector.examine(images, located)
                    if random_crops and name == "clean":
                        regions = [random_regions(loc.boxes, im.size, rng) for loc, im in zip(located, images)]
                        ablated += detector.examine(images, located, regions)
                bar.update(len(chunk))
            if not kept:
                raise ValueError(f"no record's image could be decoded ({skipped[-1]['reason']})")
            labels = [r.label for r in kept]
            metrics[name] = compute_metrics(detections, labels, annotated, [r.explanation for r in kept])
            if ablated:
                metrics[name]["random_crop_accuracy"] = verdict_metrics(
                    labels, [d.verdict for d in ablated], [d.score for d in ablated])["accuracy"]
            if name == "clean":
                metrics[name]["zoom_factor"] = median_zoom(detections, detector.protocol)
                predictions = [{"id": r.id, "label": r.label, **d.to_dict()} for r, d in zip(kept, detections)]
    return {"metrics": metrics, "predictions": predictions, "skipped": skipped}


def median_zoom(detections: Sequence, protocol: ProtocolConfig) -> float | None:
    """The median zoom factor of the crops query 2 was shown (detail in a crop over detail of the same
    region in the global view; :func:`zoomin.zoom.zoom_factor`), or None when no crop was shown."""
    zooms = [zoom_factor(crop_window(box, d.image_size, protocol.crop), d.image_size, protocol)
             for d in detections for box in d.boxes[: protocol.crop.max_crops]]
    return float(np.median(zooms)) if zooms else None


def random_regions(boxes: Sequence[Box], image_size: tuple[int, int], rng: np.random.Generator) -> list[Box]:
    """Boxes of the same sizes as ``boxes``, each placed uniformly at random inside the image: the crops
    the paper's ablation shows query 2 instead of the located ones."""
    w, h = image_size
    out = []
    for x1, y1, x2, y2 in boxes:
        bw, bh = min(x2 - x1, w), min(y2 - y1, h)
        left, top = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        out.append([left, top, left + bw, top + bh])
    return out


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
