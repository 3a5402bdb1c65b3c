"""``zoomin grpo``: GRPO on one stage of the protocol with TRL's GRPOTrainer.

    zoomin grpo --config recipes/tiny/grpo_locate.yaml [--key value ...]

* ``locate``: query 1, rewarded by format + box IoU by default.
* ``examine``: query 2 with crops from the annotations, from a frozen locator checkpoint, or from
  the policy's own query-1 answer at rollout time; rewarded by verdict, explanation, format and zoom
  consistency by default.
* ``joint``: the whole locate-zoom-examine trajectory (:mod:`rl.joint`).

This module builds the stage's dataset, rewards and trainer (:mod:`rl.trainer`, :mod:`rl.joint`)
and runs it; the trainers never import it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from trl import GRPOTrainer, get_peft_config

from rewards.registry import DEFAULT_REWARDS, build_rewards
from rl.checkpoints import CompletionMarker, resolve_resume
from rl.config import ZoomInGRPOConfig, check_grpo, load_mapping, parse
from rl.distributed import prepare_distributed
from rl.joint import JointGRPOTrainer
from rl.modeling import build_protocol, load_eval_records, load_model, load_processor, load_training_records
from rl.outputs import InfoWriter, finish, record_recipe
from rl.preflight import check_stage
from rl.trainer import ZoomInGRPOTrainer
from rl.vllm import check_vllm
from zoomin.data import Record
from zoomin.formats import grpo_dataset

logger = logging.getLogger(__name__)


def locator_boxes(checkpoint: str, records: list[Record], cache: Path, batch_size: int = 16) -> dict[str, list[list[float]]]:
    """Boxes a frozen locator checkpoint finds on each record's image, keyed by record id.

    Computed once per run, before training, and shared out: each process locates every
    ``world``-th image on its own accelerator, a batch at a time (images decoded per batch, never all
    at once), the boxes are gathered to every process, and the main process writes ``cache``, keyed by
    the locator's files and the records, so a rerun or a resume with the same locator and data reads
    it instead. The locator is freed before the model to train loads.
    """
    import gc

    import torch
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list, gather_object

    state = PartialState()
    key = _locator_key(checkpoint, records)
    cached: list = [None]  # the main process reads the cache and tells the others, so all take one path
    if state.is_main_process and cache.is_file() and (saved := json.loads(cache.read_text())).get("key") == key:
        cached = [saved["boxes"]]
    if state.num_processes > 1:
        broadcast_object_list(cached, from_process=0)
    if cached[0] is not None:
        return cached[0]
    from zoomin.detector import ZoomInDetector

    detector = ZoomInDetector.from_pretrained(checkpoint, device=state.device)
    mine = records[state.process_index :: state.num_processes]
    found: list[tuple[str, list[list[float]]]] = []
    for start in range(0, len(mine), batch_size):
        chunk = mine[start : start + batch_size]
        located = detector.locate_only([r.load_image() for r in chunk], batch_size=batch_size)
        found += [(r.id, res.boxes) for r, res in zip(chunk, located)]
        logger.info("locator: %d / %d images on this process", len(found), len(mine))
    del detector
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the memory a colocated vLLM engine measures next
    boxes = dict(gather_object(found) if state.num_processes > 1 else found)
    if state.is_main_process:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "locator": checkpoint, "boxes": boxes}))
        tmp.replace(cache)
    return boxes


def _locator_key(checkpoint: str, records: list[Record]) -> str:
    """What the located boxes depend on: the locator's protocol and weights (names, sizes, times) and
    each record's id and image."""
    folder = Path(checkpoint)
    files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())
    data = [(r.id, r.image if isinstance(r.image, str) else r.image_size) for r in records]
    return hashlib.sha256(json.dumps([files, data], default=list).encode()).hexdigest()


def main(argv: list[str] | None = None) -> GRPOTrainer:
    trainer, write_info, title = build(argv)
    trainer.train(resume_from_checkpoint=resolve_resume(trainer.args.resume_from_checkpoint, trainer.args.output_dir))
    finish(trainer, write_info, title)
    return trainer


def build(argv: list[str] | None = None) -> tuple[GRPOTrainer, InfoWriter, str]:
    """The stage's trainer, ready to train, the writer of its checkpoint info and the run's title
    (apart from :func:`main` for tests and benchmarks that look inside a run)."""
    run, model_args = parse(ZoomInGRPOConfig, prepare_distributed(argv))
    family = check_grpo(run, model_args)
    record_recipe("grpo", argv, run.output_dir)

    processor = load_processor(model_args.model_name_or_path)
    protocol = build_protocol(family, processor, run.protocol, model_args.model_name_or_path)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    check_vllm(run, world_size)
    records = load_training_records(run, run.output_dir)
    check_stage("grpo", run, model_args.model_name_or_path, protocol, processor, records, world_size)
    held_out = load_eval_records(run, run.output_dir) if run.eval_data else []
    crop_boxes = None
    if run.stage == "examine" and run.crop_source == "locator":
        crop_boxes = locator_boxes(run.locator_checkpoint, records + held_out, Path(run.output_dir) / "locator_boxes.json",
                                   batch_size=run.per_device_eval_batch_size)
    train = grpo_dataset(records, run.stage, protocol, crop_boxes=crop_boxes)
    # TRL's own evaluation: the stage's prompts on held-out records, sampled and scored like training's
    evaluation = grpo_dataset(held_out, run.stage, protocol, crop_boxes=crop_boxes) if held_out else None
    funcs, weights = build_rewards(run.rewards or DEFAULT_REWARDS[run.stage], run.reward_weights, protocol,
                                   load_mapping(run.reward_params, "reward_params"))
    run.reward_weights = weights
    trained = ["locate", "examine"] if run.stage == "joint" else [run.stage]  # policy crops: query 1 is not trained
    write_info = InfoWriter(protocol, family, model_args.model_name_or_path, f"grpo_{run.stage}", argv,
                            run.train_data, len(records), budgets=dict.fromkeys(trained, run.max_completion_length))

    trainer_cls: type[GRPOTrainer] = ZoomInGRPOTrainer
    extra: dict[str, Any] = {"crop_source": run.crop_source if run.stage == "examine" else "annotations"}
    if run.stage == "joint":
        trainer_cls, extra = JointGRPOTrainer, {}
    trainer = trainer_cls(
        model=load_model(model_args, run.freeze_vision),
        reward_funcs=funcs,
        args=run,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=processor,
        peft_config=get_peft_config(model_args),
        callbacks=[CompletionMarker(write_info)],
        protocol=protocol,
        **extra,
    )
    return trainer, write_info, f"GRPO {run.stage} {model_args.model_name_or_path}"
