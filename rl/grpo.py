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
from zoomin.formats import grpo_dataset, locate_target
from zoomin.protocol import ProtocolConfig

logger = logging.getLogger(__name__)


def locator_boxes(checkpoint: str, records: list[Record], cache: Path, batch_size: int = 16) -> dict[str, list[list[float]]]:
    """Boxes a frozen locator checkpoint finds on each record's image, keyed by record id.

    Computed once per run, before training: the main process locates every image batch by batch on
    its accelerator (images decoded a batch at a time, never all at once) and writes ``cache``, keyed by
    the locator's files and the records; the other processes wait and read it, and a rerun or a resume
    with the same locator and data reads it too. A process that cannot see the file (an output folder
    not shared between nodes) locates for itself.
    """
    from accelerate import PartialState

    state = PartialState()
    key = _locator_key(checkpoint, records)
    with state.main_process_first():
        if cache.is_file() and (saved := json.loads(cache.read_text())).get("key") == key:
            return saved["boxes"]
        from zoomin.detector import ZoomInDetector

        detector = ZoomInDetector.from_pretrained(checkpoint, device=state.device)
        boxes: dict[str, list[list[float]]] = {}
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            located = detector.locate_only([r.load_image() for r in chunk], batch_size=batch_size)
            boxes.update({r.id: res.boxes for r, res in zip(chunk, located)})
            logger.info("locator: %d / %d images", len(boxes), len(records))
        if state.is_main_process:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps({"key": key, "locator": checkpoint, "boxes": boxes}))
            tmp.replace(cache)
        del detector
        return boxes


def _locator_key(checkpoint: str, records: list[Record]) -> str:
    """What the located boxes depend on: the locator's protocol and weights (names, sizes, times) and
    each record's id and image."""
    folder = Path(checkpoint)
    files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())
    data = [(r.id, r.image if isinstance(r.image, str) else r.image_size) for r in records]
    return hashlib.sha256(json.dumps([files, data], default=list).encode()).hexdigest()


def budget_cuts(records: list[Record], stage: str, crop_source: str, protocol: ProtocolConfig, tokenizer,
                budget: int) -> str | None:
    """Why ``max_completion_length`` (``budget``) is too short for this stage's answers, or None.

    The reference answers the SFT warm start taught are the measure: a rollout cut at the budget
    loses its closing tags (format 0) and whatever came after the cut (boxes, verdict), so the stage
    would reward short answers rather than right ones. Query 1 runs under the same budget when the
    examine stage takes the policy's crops, and in the joint stage.
    """
    answers = {"locate": lambda r: locate_target(r, protocol),
               "examine": lambda r: protocol.render_examine(r.explanation, r.label)}
    kinds = {"locate": ["locate"], "examine": ["examine"] + (["locate"] if crop_source == "policy" else []),
             "joint": ["locate", "examine"]}[stage]
    cut, longest = 0, (0, "", "")
    for record in records:
        for kind in kinds:
            n = len(tokenizer(answers[kind](record))["input_ids"]) + 1  # + the end-of-turn token
            cut += n > budget
            longest = max(longest, (n, record.id, kind))
    if not cut:
        return None
    n, record_id, kind = longest
    return (f"max_completion_length {budget} cuts {cut} reference answers of {len(records)} records (the longest, "
            f"the {kind} answer of record {record_id}, is {n} tokens): cut rollouts lose their closing tags and "
            f"what follows, so the rewards would favour short answers; raise max_completion_length to {n} or more")


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
    cuts = budget_cuts(records, run.stage, run.crop_source, protocol, processor.tokenizer, run.max_completion_length)
    if cuts:
        logger.warning(cuts)
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
