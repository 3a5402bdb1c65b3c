"""``zoomin warmup``: teach a vision tower trained from scratch where the artifacts are, before SFT.

    zoomin warmup --config recipes/tiny/warmup.yaml [--key value ...]

Real ZoomIn training starts from a pretrained vision encoder. The random-weight demo model has
none, and SFT alone cannot make one: its only signal about the image is one verdict word and a few
box digits per answer of ~100 tokens, and on MagniFake-mini the small model answers "real" to
everything after minutes of SFT. This stage gives the vision tower a dense signal from the same
annotations: for every merged vision token (what the language model receives), the fraction of its
pixels inside an annotated box; for every image, fake or real. Two linear heads read these off the
tower's output and are dropped afterwards; the saved folder is the full model with its updated
vision tower, which SFT then loads as its base. Transformers' Trainer runs the loop.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits
from transformers import PreTrainedModel, Trainer, TrainingArguments
from transformers.image_processing_utils import BaseImageProcessor

from rl.config import DataArguments, check_data, model_family, parse
from rl.curves import plot_curves
from rl.distributed import end_distributed, prepare_distributed
from rl.modeling import load_model, load_processor, load_training_records
from rl.outputs import record_recipe
from zoomin.data import Record, load_records
from zoomin.images import ImageProblem

logger = logging.getLogger(__name__)


@dataclass
class ZoomInWarmupConfig(TrainingArguments, DataArguments):
    """Vision warm-up on artifact maps drawn from the training boxes."""

    box_weight: float = field(
        default=1.0, metadata={"help": "Weight of the per-token box loss against the per-image real/fake loss."}
    )
    report_to: None | str | list[str] = field(default="tensorboard", metadata={"help": "Where to log (TensorBoard by default)."})


def box_coverage(boxes: list[list[float]], size: tuple[int, int], grid_hw: tuple[int, int], unit: int) -> torch.Tensor:
    """Fraction of each merged token's pixels that lie inside any box, in the tokens' row-major order.

    ``size`` is the original (width, height); ``grid_hw`` the merged-token grid of the resized image,
    each token covering ``unit`` x ``unit`` resized pixels. Boxes are rasterised at that resolution,
    so overlapping boxes count once.
    """
    rows, cols = grid_hw
    height, width = rows * unit, cols * unit
    sx, sy = width / size[0], height / size[1]
    mask = np.zeros((height, width), dtype=np.float32)
    for x1, y1, x2, y2 in boxes:
        mask[round(y1 * sy) : round(y2 * sy), round(x1 * sx) : round(x2 * sx)] = 1.0
    return torch.from_numpy(mask.reshape(rows, unit, cols, unit).mean(axis=(1, 3)).reshape(-1))


class ArtifactMaps(torch.utils.data.Dataset):
    """Records as vision-tower inputs plus their targets (token box coverage, image label).

    A record whose image stopped decoding after validation does not end the run: the next record
    whose image decodes is served in its place, with its own targets (never one record's label on
    another's pixels), and a warning names both once. ``unreadable`` lists the records skipped so.
    """

    def __init__(self, records: list[Record], image_processor: BaseImageProcessor):
        self.records, self.processor = records, image_processor
        self.unit = image_processor.patch_size * image_processor.merge_size
        self.unreadable: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        for step in range(len(self.records)):
            at = (index + step) % len(self.records)
            if at in self.unreadable:
                continue
            try:
                return self._item(self.records[at])
            except ImageProblem as e:
                self.unreadable[at] = str(e)
                logger.warning("warm-up: the image of record %s no longer decodes (%s); the next readable "
                               "record takes its place", self.records[at].id, e)
        raise ImageProblem(f"none of the {len(self.records)} records' images decodes any more")

    def _item(self, record: Record) -> dict[str, torch.Tensor]:
        image = record.load_image()
        inputs = self.processor(images=[image], return_tensors="pt")
        _, h, w = inputs["image_grid_thw"][0].tolist()
        merge = self.processor.merge_size
        return {
            "pixel_values": inputs["pixel_values"],
            "image_grid_thw": inputs["image_grid_thw"],
            "token_targets": box_coverage(record.boxes, image.size, (h // merge, w // merge), self.unit),
            "labels": torch.tensor(float(record.label == "fake")),
        }


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Images of any size in one batch: patches and token targets concatenated, as the tower takes them."""
    return {
        "pixel_values": torch.cat([i["pixel_values"] for i in items]),
        "image_grid_thw": torch.cat([i["image_grid_thw"] for i in items]),
        "token_targets": torch.cat([i["token_targets"] for i in items]),
        "labels": torch.stack([i["labels"] for i in items]),
    }


class ArtifactProbe(nn.Module):
    """The VLM's vision tower plus two linear heads on its merged output tokens."""

    def __init__(self, vlm: PreTrainedModel, box_weight: float = 1.0):
        super().__init__()
        self.vlm, self.box_weight = vlm, box_weight
        width = vlm.config.text_config.hidden_size  # the merger projects into the language model's width
        self.token_head, self.image_head = nn.Linear(width, 1), nn.Linear(width, 1)

    def forward(self, pixel_values, image_grid_thw, token_targets=None, labels=None) -> dict[str, torch.Tensor]:
        per_image = self.vlm.model.get_image_features(pixel_values, image_grid_thw).pooler_output
        token_logits = self.token_head(torch.cat(per_image)).squeeze(-1)
        image_logits = self.image_head(torch.stack([t.mean(0) for t in per_image])).squeeze(-1)
        out = {"token_logits": token_logits, "image_logits": image_logits}
        if labels is not None:
            out["loss"] = self.box_weight * binary_cross_entropy_with_logits(
                token_logits, token_targets
            ) + binary_cross_entropy_with_logits(image_logits, labels)
        return out


@torch.no_grad()
def probe_accuracy(probe: ArtifactProbe, dataset: ArtifactMaps, batch_size: int = 32) -> dict[str, float]:
    """Real/fake accuracy of the image head, and accuracy of the token head at half coverage."""
    probe.eval()
    right_images = right_tokens = tokens = 0
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        out = probe(batch["pixel_values"], batch["image_grid_thw"])
        right_images += int(((out["image_logits"] > 0) == (batch["labels"] > 0.5)).sum())
        right_tokens += int(((out["token_logits"] > 0) == (batch["token_targets"] >= 0.5)).sum())
        tokens += len(batch["token_targets"])
    probe.train()
    return {"image_accuracy": right_images / len(dataset), "token_accuracy": right_tokens / tokens}


def main(argv: list[str] | None = None) -> Trainer:
    run, model_args = parse(ZoomInWarmupConfig, prepare_distributed(argv))
    check_data(run)
    model_family(model_args.model_name_or_path)
    record_recipe("warmup", argv, run.output_dir)

    processor = load_processor(model_args.model_name_or_path)
    train = ArtifactMaps(load_training_records(run, run.output_dir), processor.image_processor)
    probe = ArtifactProbe(load_model(model_args), run.box_weight)
    trainer = Trainer(model=probe, args=run, train_dataset=train, data_collator=collate)
    trainer.train()

    if trainer.is_world_process_zero():
        out = Path(run.output_dir)
        probe.vlm.save_pretrained(out)
        processor.save_pretrained(out)
        metrics = {"train": probe_accuracy(probe, train)}
        if run.eval_data:
            held_out, report = load_records(run.eval_data, run.image_root, report_path=out / "eval_data_report.json")
            logger.warning("%s (bad records are listed in eval_data_report.json)", report.summary())
            metrics["eval"] = probe_accuracy(probe, ArtifactMaps(held_out, processor.image_processor))
        (out / "warmup_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        logger.warning("vision warm-up probe accuracy: %s", metrics)
        plot_curves(trainer.state.log_history, out / "curves.png", f"vision warm-up {model_args.model_name_or_path}")
    end_distributed(trainer)
    return trainer
