"""The GRPO trainer of the locate and examine stages: TRL's GRPOTrainer plus what ZoomIn rollouts need.

The GRPO loss, sampling, KL and logging are TRL's; this class only prepares prompts and crops (and,
with ``crop_source="policy"``, runs query 1 before query 2). :mod:`rl.joint` extends it to whole
trajectories; :mod:`rl.grpo` is the stage entry point that builds either.
"""

from __future__ import annotations

from typing import Any

import torch
from trl import GRPOTrainer

from rl.vllm import engine_prompt_ids, trl_sends_unexpanded_ids, with_vision_guard
from zoomin.protocol import ProtocolConfig
from zoomin.special_tokens import vision_token_ids
from zoomin.zoom import zoom_answer


class ZoomInGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer that can take examine-stage crops from the policy's own locate answers.

    With ``crop_source="policy"`` each batch first runs query 1 with the current policy (one greedy
    or sampled answer per distinct image, by the run's generation settings), crops the boxes it
    names, and rewrites the examine prompts, images, ``region_boxes`` and ``crop_windows`` columns
    before TRL generates and scores query 2. Only query 2 is trained in this mode.

    Vision placeholder tokens are never sampled, by HF generation or vLLM; under vLLM colocate the
    engine gets one placeholder per image (:mod:`rl.vllm`), so rollouts come from the trained context.
    """

    def __init__(self, *args: Any, protocol: ProtocolConfig, crop_source: str = "annotations", **kwargs: Any):
        run = kwargs["args"]
        if run.use_vllm:  # read by TRL when it builds the engine's sampling parameters, in both modes
            run.generation_kwargs = with_vision_guard(run.generation_kwargs, kwargs["model"].config,
                                                      kwargs["processing_class"].tokenizer)
        super().__init__(*args, **kwargs)
        self.protocol = protocol
        self.crop_source = crop_source
        if not self.use_vllm:  # TRL builds a generation config for HF generation only
            self.generation_config.suppress_tokens = vision_token_ids(self.model.config)
        self.collapse_image_runs = self.use_vllm and self.vllm_mode == "colocate" and not trl_sends_unexpanded_ids()

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        """TRL's evaluation, sampling from the run's seed every time and leaving the training RNG as it was.

        Every evaluation then draws the same random numbers, so the held-out reward before training and
        after it differ by what training changed rather than by sampling luck (common random numbers),
        and evaluating does not change the training run it interrupts. Each process adds its index to
        the seed, as TRL's own seeding does, so that processes do not draw the same completions. This
        covers generation with transformers; a vLLM engine samples from its own generator.
        """
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.args.seed + self.accelerator.process_index)
            return super().evaluate(*args, **kwargs)

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        # TRL's vLLM branch uses these ids for the engine only; the trained ids stay expanded.
        if self.collapse_image_runs:
            prompt_ids = engine_prompt_ids(prompt_ids, self.processing_class.image_token_id)
        return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations, has_tool_images)

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
    query = zoom_answer(row["images"][0], locate_text, protocol)
    return {**row, "prompt": query.messages, "images": query.images, "region_boxes": query.region_boxes,
            "crop_windows": query.crop_windows, "locate_completions": locate_text}
