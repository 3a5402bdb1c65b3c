"""The GRPO trainer of the locate and examine stages: TRL's GRPOTrainer plus what ZoomIn rollouts need.

The GRPO loss, sampling, KL and logging are TRL's; this class only prepares prompts and crops (and,
with ``crop_source="policy"``, runs query 1 before query 2). :mod:`rl.joint` extends it to whole
trajectories; :mod:`rl.grpo` is the stage entry point that builds either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from accelerate.utils import gather_object
from trl import GRPOTrainer

from rl.vllm import UNEXPANDED_IDS_PARAMETER, engine_prompt_ids, trl_sends_unexpanded_ids, with_vision_guard
from zoomin.formats import zoom_columns
from zoomin.protocol import ProtocolConfig
from zoomin.special_tokens import vision_token_ids
from zoomin.zoom import zoom_answer


class ZoomInGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer that can take examine-stage crops from the policy's own locate answers.

    With ``crop_source="policy"`` each batch first runs query 1 with the current policy (one greedy
    or sampled answer per distinct prompt of the whole batch, by the run's generation settings), crops
    the boxes it names, and rewrites the examine prompts, images and reward columns
    (:func:`zoomin.formats.zoom_columns`) before TRL generates and scores query 2. Only query 2 is
    trained in this mode.

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
        self.collapse_image_runs = self.use_vllm and self.vllm_mode == "colocate"

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

    def _generate_single_turn(self, prompt_ids: list[list[int]], images: list | None, multimodal_fields: dict,
                              num_generations: int, has_tool_images: bool = False,
                              vllm_prompt_ids: list[list[int]] | None = None) -> tuple[list, list | None]:
        """TRL's generation of one turn, with the engine's ids made here when TRL does not make them.

        ``vllm_prompt_ids`` is how a TRL with the colocate fix (PR 6718) hands over the ids meant for
        the engine; given, they are used as they are. Otherwise, in colocate mode, they are
        ``prompt_ids`` with each image run collapsed (:func:`rl.vllm.engine_prompt_ids`), which also
        covers this package's own calls (query 1 of policy crops, the joint stage's examine turn). A
        TRL that takes the argument gets them through it; TRL 1.16 gets them as ``prompt_ids``, which
        its vLLM branch hands to the engine only (the trained ids stay expanded).
        """
        if vllm_prompt_ids is None and self.collapse_image_runs:
            vllm_prompt_ids = engine_prompt_ids(prompt_ids, self.processing_class.image_token_id)
        if trl_sends_unexpanded_ids():
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images, **{UNEXPANDED_IDS_PARAMETER: vllm_prompt_ids})
        if self.use_vllm and vllm_prompt_ids is not None:
            prompt_ids = vllm_prompt_ids
        return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations, has_tool_images)

    def _generate_and_score_completions(self, inputs: list[dict]) -> dict:
        if self.crop_source == "policy":
            inputs = self._examine_from_policy(inputs)
        return super()._generate_and_score_completions(inputs)

    def _examine_from_policy(self, inputs: list[dict]) -> list[dict]:
        """``inputs`` re-aimed at query 2, every copy of a prompt with the crops of one locate answer.

        TRL spreads a prompt's group over processes (RepeatSampler), so one locate answer is drawn per
        distinct prompt of the *global* batch: each process learns which prompt ids the others hold,
        every distinct id is located once, by a process that holds its image (no pixels cross
        processes, :func:`share_prompts`), and the answers are shared. Every process generates the same
        number of prompts (padded with a copy of one of its own), because ZeRO-3's generation and
        vLLM's server and tensor-parallel modes need every process in each generation call with
        equally many prompts. With one process this is one answer per distinct prompt of the batch.
        """
        local = {row["id"]: row for row in inputs}
        shares = share_prompts(gather_object([list(local)]))
        mine = shares[self.accelerator.process_index]
        width = max(map(len, shares))
        padding = [local[mine[-1]] if mine else inputs[0]] * (width - len(mine))
        texts = self.locate([local[i] for i in mine] + padding)
        answers: dict[str, str] = {}
        for part in gather_object([dict(zip(mine, texts))]):
            answers.update(part)
        return [examine_row(row, answers[row["id"]], self.protocol) for row in inputs]

    def locate(self, rows: list[dict]) -> list[str]:
        """The policy's query-1 answers for ``rows`` (their first image is the original)."""
        from trl.data_utils import prepare_multimodal_messages

        prompts = [prepare_multimodal_messages(self.protocol.locate_messages(), images=[r["images"][0]]) for r in rows]
        prompt_ids, images, fields = self._tokenize_prompts(prompts)
        completion_ids, _ = self._generate_single_turn(prompt_ids, images, fields, num_generations=1)
        return self.processing_class.batch_decode(completion_ids, skip_special_tokens=True)


def share_prompts(held: Sequence[Sequence[str]]) -> list[list[str]]:
    """Which prompt ids each process locates, given the ids each one holds (indexed by process).

    Every distinct id goes to exactly one process that holds it, so its image never has to travel.
    Ids only one process holds go first, to that process; each shared id then goes to its least busy
    holder (the lower index on ties), which keeps the busiest process, and so the padding, small. The
    result is the same on every process, and each share keeps the order in which the ids were held.
    """
    holders: dict[str, list[int]] = {}
    for rank, ids in enumerate(held):
        for prompt_id in ids:
            holders.setdefault(prompt_id, []).append(rank)
    order = sorted(holders, key=lambda prompt_id: len(holders[prompt_id]))  # stable: first-held order otherwise
    owner: dict[str, int] = {}
    load = [0] * len(held)
    for prompt_id in order:
        rank = min(holders[prompt_id], key=lambda r: (load[r], r))
        owner[prompt_id] = rank
        load[rank] += 1
    return [[prompt_id for prompt_id in dict.fromkeys(ids) if owner[prompt_id] == rank] for rank, ids in enumerate(held)]


def examine_row(row: dict, locate_text: str, protocol: ProtocolConfig) -> dict:
    """A GRPO row re-aimed at query 2 with crops of the boxes named in ``locate_text``."""
    query = zoom_answer(row["images"][0], locate_text, protocol)
    return {**row, "prompt": query.messages, "images": query.images,
            **zoom_columns(query.region_boxes, query.crop_windows, locate_text)}
