"""Loading the model, its processor and the protocol that goes with them."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedModel, ProcessorMixin
from trl import ModelConfig

from rl.config import DataArguments, RecipeError, load_mapping, saved_protocol
from rl.distributed import keep_checkpoint_names
from zoomin.checkpoint import ZOOMIN_FILE
from zoomin.codecs import BOUNDS, BoxCodec
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
    """The protocol for this model, with its pixel budget applied to ``processor`` (in place).

    The protocol is the one saved with the model (a ZoomIn checkpoint's ``zoomin.json``, so later
    stages keep the prompts and crops earlier ones trained), then the recipe's overrides. The box
    codec's family, patch and merge sizes are the processor's own; its pixel budget
    (``protocol.codec.min_pixels``/``max_pixels``) is the saved one, else the recipe's, else the
    processor's. A recipe that sets another budget than the checkpoint was trained with is refused:
    the model would see images at another resolution and, for Qwen2.5-VL, boxes in another frame.
    """
    fields = dict(load_mapping(overrides, "protocol"))
    budget = fields.pop("codec", None) or {}
    if not isinstance(budget, dict) or set(budget) - set(BOUNDS):
        raise RecipeError(f"protocol.codec: only the pixel budget ({', '.join(BOUNDS)}) can be set in a recipe, got "
                          f"{budget!r}; the rest of the codec is read from the model's processor")
    inherited = saved_protocol(model_dir)
    saved = inherited.pop("codec", None)
    if saved is not None:
        trained = {k: saved[k] for k in BOUNDS}
        if any(budget.get(k, v) != v for k, v in trained.items()):
            raise RecipeError(f"protocol.codec {budget} differs from the pixel budget {trained} that {model_dir} was "
                              f"trained with (its {ZOOMIN_FILE}): a later stage must see images as earlier ones did; "
                              "drop protocol.codec from the recipe to keep the checkpoint's budget")
        budget = trained
    try:
        codec = replace(BoxCodec.from_processor(family, processor), **budget)
    except (TypeError, ValueError) as e:
        raise RecipeError(f"protocol.codec: {e}") from None
    codec.apply_to(processor)
    return ProtocolConfig(codec=codec, **{**inherited, **fields})


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
    """Records validated once per run: the main process decodes every image and writes the report,
    then hands the good records to the other processes (a collective broadcast, so no file has to be
    shared between nodes and none can be stale). Decoding 20k photographs on every rank of every node
    would cost each of them the same minutes before the first step. The others wait in the broadcast,
    under the process group's timeout (``ddp_timeout``, 1800 s by default): raise it for data that
    takes longer to decode."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState()
    shared: list = [None]
    if state.is_main_process:
        records, report = load_records(path, run.image_root, strict=run.strict_data, report_path=report_path)
        logger.warning(report.summary())
        for finding in report.findings[:20]:
            logger.warning("  %s", finding)
        shared = [records]
    if state.num_processes > 1:
        broadcast_object_list(shared, from_process=0)
    records = shared[0]
    if not records:
        raise ValueError(f"no usable records in {path}; see {report_path}")
    return records[:limit] if limit else records
