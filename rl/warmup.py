"""``zoomin warmup``: teach a vision tower trained from scratch where the artifacts are, before SFT.

    zoomin warmup --config recipes/tiny/warmup.yaml [--key value ...]

Real ZoomIn training starts from a pretrained vision encoder. The random-weight demo model has
none, and SFT alone cannot make one: its only signal about the image is one verdict word and a few
box digits per answer of ~100 tokens, and on MagniFake-mini the small model answers "real" to
everything after minutes of SFT. This stage gives the vision tower a dense signal from the same
annotations: for every merged vision token (what the language model receives), the fraction of its
pixels inside an annotated box; for every image, fake or real. With ``zoom_crops`` (the default)
the tower also sees what query 2 will show it, the zoomed crop of every annotated box (by the
protocol's crop policy, through :mod:`zoomin.zoom`), labelled with its image's label: fine evidence
that the resized whole image loses is learnt where it is visible. Two linear heads read these off
the tower's output and are dropped afterwards; the saved folder is the full model with its updated
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
from torch.nn.functional import binary_cross_entropy_with_logits, mse_loss
from transformers import PreTrainedModel, Trainer, TrainingArguments, set_seed
from transformers.image_processing_utils import BaseImageProcessor

from rl.config import DataArguments, check_data, load_mapping, model_family, parse
from rl.curves import plot_curves
from rl.distributed import end_distributed, prepare_distributed
from rl.modeling import build_protocol, load_eval_records, load_model, load_processor, load_training_records
from rl.outputs import InfoWriter, record_recipe
from rl.preflight import check_stage
from zoomin.data import Record
from zoomin.images import ImageProblem
from zoomin.protocol import CropPolicy
from zoomin.zoom import crop_window, zoom

logger = logging.getLogger(__name__)


@dataclass
class ZoomInWarmupConfig(TrainingArguments, DataArguments):
    """Vision warm-up on artifact maps drawn from the training boxes."""

    box_weight: float = field(
        default=1.0, metadata={"help": "Weight of the per-token box loss against the per-image real/fake loss."}
    )
    position_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of a per-token loss on where the token lies in its image (row and column, "
                          "0-1). A tower trained from scratch keeps little absolute position in its tokens, and "
                          "the language model needs it to write a box's coordinates; pretrained encoders have it."},
    )
    zoom_crops: bool = field(
        default=True,
        metadata={"help": "Also train on the zoomed crop of every annotated box (the protocol's crop policy), "
                          "labelled with its image's label, so evidence only a crop keeps is learnt."},
    )
    protocol: dict | str | None = field(
        default=None,
        metadata={"help": "Protocol overrides (as in SFT/GRPO recipes); only the crop policy matters here, and it "
                          "must match the later stages' so the tower learns the crops they show."},
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


def boxes_in_window(boxes: list[list[float]], window: list[int]) -> list[list[float]]:
    """``boxes`` clipped to ``window`` and shifted into its frame (boxes outside it are left out)."""
    x0, y0, x1, y1 = window
    inside = [[max(b[0], x0) - x0, max(b[1], y0) - y0, min(b[2], x1) - x0, min(b[3], y1) - y0] for b in boxes]
    return [b for b in inside if b[2] > b[0] and b[3] > b[1]]


class ArtifactMaps(torch.utils.data.Dataset):
    """The views the two queries show, as vision-tower inputs plus targets (token box coverage, label).

    One view per record is the whole image; with a crop policy, one more per annotated box is its
    zoomed crop (at most ``max_crops`` per record, as query 2 shows them), whose targets are the
    boxes' coverage inside the crop window and the image's label.

    A record whose image stopped decoding after validation does not end the run: the next view whose
    image decodes is served in its place, with its own targets (never one record's label on another's
    pixels), and a warning names the record once. ``unreadable`` lists the records skipped so.
    """

    def __init__(self, records: list[Record], image_processor: BaseImageProcessor, crops: CropPolicy | None = None):
        self.records, self.processor, self.crops = records, image_processor, crops
        self.unit = image_processor.patch_size * image_processor.merge_size
        self.views: list[tuple[int, list[int] | None]] = []
        for i, record in enumerate(records):
            self.views.append((i, None))
            if crops is not None:
                self.views += [(i, crop_window(b, record.image_size, crops)) for b in record.boxes[: crops.max_crops]]
        self.unreadable: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.views)

    def is_crop(self, index: int) -> bool:
        return self.views[index][1] is not None

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        for step in range(len(self.views)):
            record_index, window = self.views[(index + step) % len(self.views)]
            if record_index in self.unreadable:
                continue
            try:
                return self._item(self.records[record_index], window)
            except ImageProblem as e:
                self.unreadable[record_index] = str(e)
                logger.warning("warm-up: the image of record %s no longer decodes (%s); the next readable "
                               "view takes its place", self.records[record_index].id, e)
        raise ImageProblem(f"none of the {len(self.records)} records' images decodes any more")

    def _item(self, record: Record, window: list[int] | None) -> dict[str, torch.Tensor]:
        image, boxes, size = record.load_image(), record.boxes, record.image_size
        if window is not None:
            image = zoom(image, window, self.crops)
            boxes, size = boxes_in_window(boxes, window), (window[2] - window[0], window[3] - window[1])
        inputs = self.processor(images=[image], return_tensors="pt")
        _, h, w = inputs["image_grid_thw"][0].tolist()
        merge = self.processor.merge_size
        return {
            "pixel_values": inputs["pixel_values"],
            "image_grid_thw": inputs["image_grid_thw"],
            "token_targets": box_coverage(boxes, size, (h // merge, w // merge), self.unit),
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

    def __init__(self, vlm: PreTrainedModel, box_weight: float = 1.0, position_weight: float = 0.0):
        super().__init__()
        self.vlm, self.box_weight, self.position_weight = vlm, box_weight, position_weight
        width = vlm.config.text_config.hidden_size  # the merger projects into the language model's width
        self.token_head, self.image_head = nn.Linear(width, 1), nn.Linear(width, 1)
        self.position_head = nn.Linear(width, 2) if position_weight else None
        self.merge = vlm.config.vision_config.spatial_merge_size

    def forward(self, pixel_values, image_grid_thw, token_targets=None, labels=None) -> dict[str, torch.Tensor]:
        per_image = self.vlm.model.get_image_features(pixel_values, image_grid_thw).pooler_output
        token_logits = self.token_head(torch.cat(per_image)).squeeze(-1)
        image_logits = self.image_head(torch.stack([t.mean(0) for t in per_image])).squeeze(-1)
        out = {"token_logits": token_logits, "image_logits": image_logits}
        if self.position_head is not None:
            out["positions"] = self.position_head(torch.cat(per_image))
        if labels is not None:
            out["loss"] = self.box_weight * binary_cross_entropy_with_logits(
                token_logits, token_targets
            ) + binary_cross_entropy_with_logits(image_logits, labels)
            if self.position_head is not None:
                out["loss"] = out["loss"] + self.position_weight * mse_loss(
                    out["positions"], self.token_positions(image_grid_thw))
        return out

    def token_positions(self, image_grid_thw: torch.Tensor) -> torch.Tensor:
        """(row, column) of every merged token's centre as fractions of its image, in row-major order."""
        centres = []
        for t, h, w in image_grid_thw.tolist():
            rows, cols = h // self.merge, w // self.merge
            r, c = torch.meshgrid((torch.arange(rows) + 0.5) / rows, (torch.arange(cols) + 0.5) / cols, indexing="ij")
            centres.append(torch.stack([r.reshape(-1), c.reshape(-1)], dim=1).repeat(t, 1))
        return torch.cat(centres)


@torch.no_grad()
def probe_accuracy(probe: ArtifactProbe, dataset: ArtifactMaps, batch_size: int = 32) -> dict[str, float | None]:
    """Real/fake accuracy of the image head on whole images and on crops (None without crops),
    accuracy of the token head at half coverage, and, with a position head, its mean error in
    tokens on whole images, for rows and for columns: what the language model has to read a box's
    coordinates from."""
    probe.eval()
    right = {False: 0, True: 0}
    right_tokens = tokens = 0
    position_error, whole_tokens = torch.zeros(2), 0
    for start in range(0, len(dataset), batch_size):
        indices = range(start, min(start + batch_size, len(dataset)))
        batch = collate([dataset[i] for i in indices])
        out = probe(batch["pixel_values"], batch["image_grid_thw"])
        correct = ((out["image_logits"] > 0) == (batch["labels"] > 0.5)).tolist()
        for i, ok in zip(indices, correct):
            right[dataset.is_crop(i)] += ok
        right_tokens += int(((out["token_logits"] > 0) == (batch["token_targets"] >= 0.5)).sum())
        tokens += len(batch["token_targets"])
        if "positions" in out:
            grid, m = batch["image_grid_thw"], probe.merge
            # Per token: (rows, columns) of its image's token grid, to turn fractions into tokens.
            sides = torch.cat([torch.tensor([[h // m, w // m]] * (t * h * w // m**2), dtype=torch.float32)
                               for t, h, w in grid.tolist()])
            whole = torch.cat([torch.full((t * h * w // m**2,), not dataset.is_crop(i))
                               for i, (t, h, w) in zip(indices, grid.tolist())])
            per_token = (out["positions"] - probe.token_positions(grid)).abs() * sides
            position_error += per_token[whole].sum(0)
            whole_tokens += int(whole.sum())
    probe.train()
    n_crops = sum(dataset.is_crop(i) for i in range(len(dataset)))
    n_images = len(dataset) - n_crops
    metrics = {"image_accuracy": right[False] / n_images, "crop_accuracy": right[True] / n_crops if n_crops else None,
               "token_accuracy": right_tokens / tokens}
    if probe.position_head is not None:
        rows, columns = (position_error / whole_tokens).tolist() if whole_tokens else (None, None)
        metrics.update(position_error_rows=rows, position_error_columns=columns)
    return metrics


def main(argv: list[str] | None = None) -> Trainer:
    run, model_args = parse(ZoomInWarmupConfig, prepare_distributed(argv))
    check_data(run)
    family = model_family(model_args.model_name_or_path)
    load_mapping(run.protocol, "protocol")
    record_recipe("warmup", argv, run.output_dir)

    processor = load_processor(model_args.model_name_or_path)
    protocol = build_protocol(family, processor, run.protocol, model_args.model_name_or_path)
    records = load_training_records(run, run.output_dir)
    check_stage("warmup", run, model_args.model_name_or_path, protocol, processor, records)
    train = ArtifactMaps(records, processor.image_processor, protocol.crop if run.zoom_crops else None)
    # The saved model is a ZoomIn run like any other, so the stages after it inherit its lineage and
    # its protocol (the recipe's crop policy included, which the tower has just learnt to see).
    write_info = InfoWriter(protocol, family, model_args.model_name_or_path, "warmup", argv, run.train_data,
                            len(records))
    set_seed(run.seed)  # the heads are drawn here, before the Trainer seeds: without it two runs differ
    probe = ArtifactProbe(load_model(model_args), run.box_weight, run.position_weight)
    trainer = Trainer(model=probe, args=run, train_dataset=train, data_collator=collate)
    trainer.train()

    if trainer.is_world_process_zero():
        out = Path(run.output_dir)
        probe.vlm.save_pretrained(out)
        processor.save_pretrained(out)
        write_info(out)
        metrics = {"train": probe_accuracy(probe, train)}
        if run.eval_data:
            held_out = load_eval_records(run, out)
            metrics["eval"] = probe_accuracy(probe, ArtifactMaps(held_out, processor.image_processor, train.crops))
        (out / "warmup_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        logger.warning("vision warm-up probe accuracy: %s", metrics)
        plot_curves(trainer.state.log_history, out / "curves.png", f"vision warm-up {model_args.model_name_or_path}")
    end_distributed(trainer)
    return trainer
