"""``zoomin grpo``: GRPO on one stage of the protocol with TRL's GRPOTrainer.

    zoomin grpo --config recipes/tiny/grpo_locate.yaml [--key value ...]

* ``locate``: query 1, rewarded by format + box IoU by default.
* ``examine``: query 2 with crops from the annotations, from a frozen locator checkpoint, or from
  the policy's own query-1 answer at rollout time; rewarded by verdict, explanation, format and zoom
  consistency by default.
* ``joint``: see :mod:`rl.joint`.

The GRPO loss, sampling, KL and logging are TRL's; this module only prepares prompts and crops.
"""

from __future__ import annotations

from typing import Any

from PIL import Image
from trl import GRPOTrainer, get_peft_config

from rewards.registry import DEFAULT_REWARDS, build_rewards
from rl.checkpoints import CompletionMarker, resolve_resume
from rl.config import ZoomInGRPOConfig, check_grpo, load_mapping, parse
from rl.distributed import prepare_distributed
from rl.modeling import build_protocol, load_model, load_processor, load_training_records
from rl.outputs import InfoWriter, finish, record_recipe
from zoomin.data import Record
from zoomin.formats import examine_inputs, grpo_dataset, located_boxes
from zoomin.protocol import ProtocolConfig
from zoomin.special_tokens import vision_token_ids


class ZoomInGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer that can take examine-stage crops from the policy's own locate answers.

    With ``crop_source="policy"`` each batch first runs query 1 with the current policy (one greedy
    or sampled answer per distinct image, by the run's generation settings), crops the boxes it
    names, and rewrites the examine prompts, images, ``region_boxes`` and ``crop_windows`` columns
    before TRL generates and scores query 2. Only query 2 is trained in this mode.
    """

    def __init__(self, *args: Any, protocol: ProtocolConfig, crop_source: str = "annotations", **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.protocol = protocol
        self.crop_source = crop_source
        self.generation_config.suppress_tokens = vision_token_ids(self.model.config)

    def _generate_and_score_completions(self, inputs: list[dict]) -> dict:
        if self.crop_source == "policy":
            inputs = self._examine_from_policy(inputs)
        return super()._generate_and_score_completions(inputs)

    def _examine_from_policy(self, inputs: list[dict]) -> list[dict]:
        unique = list({row["id"]: row for row in inputs}.values())
        texts = self.locate(unique)
        rewritten = {row["id"]: examine_row(row, text, self.protocol) for row, text in zip(unique, texts)}
        return [rewritten[row["id"]] for row in inputs]

    def locate(self, rows: list[dict]) -> list[str]:
        """The policy's query-1 answers for ``rows`` (their first image is the original)."""
        from trl.data_utils import prepare_multimodal_messages

        prompts = [prepare_multimodal_messages(self.protocol.locate_messages(), images=[r["images"][0]]) for r in rows]
        prompt_ids, images, fields = self._tokenize_prompts(prompts)
        completion_ids, _ = self._generate_single_turn(prompt_ids, images, fields, num_generations=1)
        return self.processing_class.batch_decode(completion_ids, skip_special_tokens=True)


def examine_row(row: dict, locate_text: str, protocol: ProtocolConfig) -> dict:
    """A GRPO row re-aimed at query 2 with crops of the boxes named in ``locate_text``."""
    image: Image.Image = row["images"][0]
    boxes, _ = located_boxes(protocol.parse(locate_text, "locate").boxes or [], image.size, protocol)
    messages, images, shown, windows = examine_inputs(image, boxes, protocol, locate_text)
    return {**row, "prompt": messages, "images": images, "region_boxes": shown, "crop_windows": windows,
            "locate_completions": locate_text}


def locator_boxes(checkpoint: str, records: list[Record]) -> dict[str, list[list[float]]]:
    """Boxes a frozen locator checkpoint finds on each record's image, keyed by record id."""
    from zoomin.detector import ZoomInDetector

    detector = ZoomInDetector.from_pretrained(checkpoint)
    results = detector.locate_only([r.load_image() for r in records])
    return {r.id: res.boxes for r, res in zip(records, results)}


def main(argv: list[str] | None = None) -> GRPOTrainer:
    run, model_args = parse(ZoomInGRPOConfig, prepare_distributed(argv))
    family = check_grpo(run, model_args)
    record_recipe("grpo", argv, run.output_dir)

    processor = load_processor(model_args.model_name_or_path)
    protocol = build_protocol(family, processor, run.protocol, model_args.model_name_or_path)
    records = load_training_records(run, run.output_dir)
    crop_boxes = None
    if run.stage == "examine" and run.crop_source == "locator":
        crop_boxes = locator_boxes(run.locator_checkpoint, records)
    train = grpo_dataset(records, run.stage, protocol, crop_boxes=crop_boxes)
    funcs, weights = build_rewards(run.rewards or DEFAULT_REWARDS[run.stage], run.reward_weights, protocol,
                                   load_mapping(run.reward_params, "reward_params"))
    run.reward_weights = weights
    write_info = InfoWriter(protocol, family, model_args.model_name_or_path)

    trainer_cls: type[GRPOTrainer] = ZoomInGRPOTrainer
    extra: dict[str, Any] = {"crop_source": run.crop_source if run.stage == "examine" else "annotations"}
    if run.stage == "joint":
        from rl.joint import JointGRPOTrainer

        trainer_cls, extra = JointGRPOTrainer, {}
    trainer = trainer_cls(
        model=load_model(model_args, run.freeze_vision),
        reward_funcs=funcs,
        args=run,
        train_dataset=train,
        processing_class=processor,
        peft_config=get_peft_config(model_args),
        callbacks=[CompletionMarker(write_info)],
        protocol=protocol,
        **extra,
    )
    trainer.train(resume_from_checkpoint=resolve_resume(run.resume_from_checkpoint, run.output_dir))
    finish(trainer, write_info, f"GRPO {run.stage} {model_args.model_name_or_path}")
    return trainer
