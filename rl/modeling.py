"""Loading the model, its processor and the protocol that goes with them."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedModel, ProcessorMixin
from trl import ModelConfig

from rl.config import DataArguments, load_mapping
from rl.distributed import keep_checkpoint_names
from zoomin.checkpoint import ZOOMIN_FILE, CheckpointInfo
from zoomin.codecs import BoxCodec
from zoomin.data import Record, load_records
from zoomin.protocol import ProtocolConfig

logger = logging.getLogger(__name__)


def load_processor(model_name_or_path: str) -> ProcessorMixin:
    """The model's processor, left-padded (TRL's GRPO generation requires it)."""
    processor = AutoProcessor.from_pretrained(model_name_or_path)
    processor.tokenizer.padding_side = "left"
    return processor


def build_protocol(
    family: str, processor: ProcessorMixin, overrides: dict | str | None, model_dir: str | None = None
) -> ProtocolConfig:
    """The protocol for this model: the one saved with it (a ZoomIn checkpoint's ``zoomin.json``,
    so later stages keep the prompts earlier ones trained), then the recipe's overrides, with the
    box codec always read from the processor itself."""
    fields = load_mapping(overrides, "protocol")
    if "codec" in fields:
        raise ValueError("protocol.codec cannot be set in a recipe: it is read from the model's processor")
    inherited: dict = {}
    if model_dir and (Path(model_dir) / ZOOMIN_FILE).is_file():
        inherited = CheckpointInfo.load(model_dir).protocol.to_dict()
        inherited.pop("schema_version")
        inherited.pop("codec")
    return ProtocolConfig(codec=BoxCodec.from_processor(family, processor), **{**inherited, **fields})


def load_model(model: ModelConfig, freeze_vision: bool = False) -> PreTrainedModel:
    dtype = model.dtype if model.dtype in (None, "auto") else getattr(torch, model.dtype)
    loaded = AutoModelForImageTextToText.from_pretrained(
        model.model_name_or_path,
        revision=model.model_revision,
        dtype=dtype,
        attn_implementation=model.attn_implementation,
        use_safetensors=True,
    )
    keep_checkpoint_names(loaded)
    if freeze_vision:
        frozen = freeze_vision_tower(loaded)
        logger.info("froze %d vision parameters", frozen)
    return loaded


def freeze_vision_tower(model: PreTrainedModel) -> int:
    """Stop gradients into the vision encoder and its merger; returns how many tensors were frozen."""
    towers = [m for name, m in model.named_modules() if name.split(".")[-1] == "visual"]
    if not towers:
        raise ValueError(f"{type(model).__name__} has no `visual` module to freeze")
    frozen = 0
    for param in towers[0].parameters():
        param.requires_grad_(False)
        frozen += 1
    return frozen


def load_training_records(run: DataArguments, output_dir: str | Path) -> list[Record]:
    """Training records (``train_data``, at most ``max_records``); bad ones are skipped and reported
    in ``output_dir/data_report.json``."""
    return _load(run.train_data, run, Path(output_dir) / "data_report.json", run.max_records)


def load_eval_records(run: DataArguments, output_dir: str | Path) -> list[Record]:
    """Evaluation records (``eval_data``, at most ``max_eval_records``); bad ones are skipped and
    reported in ``output_dir/eval_data_report.json``."""
    return _load(run.eval_data, run, Path(output_dir) / "eval_data_report.json", run.max_eval_records)


def _load(path: str, run: DataArguments, report_path: Path, limit: int | None) -> list[Record]:
    records, report = load_records(path, run.image_root, strict=run.strict_data, report_path=report_path)
    logger.warning(report.summary())
    for finding in report.findings[:20]:
        logger.warning("  %s", finding)
    if not records:
        raise ValueError(f"no usable records in {path}; see {report_path}")
    return records[:limit] if limit else records
