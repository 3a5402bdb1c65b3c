"""The ``joint`` GRPO stage: one rollout is locate, crop the policy's own boxes, examine.

A trajectory is one conversation (the protocol's ``examine_in_context`` form)::

    user: <image> locate prompt        -> prompt (TRL's)
    assistant: <think>..<boxes>..       -> generated, trained
    user: Region 1: [..] <crop> ..      -> inserted, never trained
    assistant: <think>..<verdict>..     -> generated, trained

TRL already trains multi-turn completions whose middle holds inserted tokens and images: that is
its tool-calling path, which masks the inserted tokens out of the loss (``tool_mask``) and feeds
the inserted images to the forward pass. The zoom is such a tool, except that the protocol, not a
JSON tool call, says when it runs. So this trainer generates the two turns itself and hands TRL
the same per-sample results its tool loop would, and TRL's own code computes log-probabilities,
advantages and the loss. Rewards see the examine answer as the completion and the locate answer
in the ``locate_completions`` column, plus ``region_boxes`` and ``crop_windows`` of the crops used.
"""

from __future__ import annotations

from typing import Any

from trl import GRPOTrainer
from trl.data_utils import prepare_multimodal_messages

from rl.trainer import ZoomInGRPOTrainer, examine_row
from zoomin.protocol import ProtocolConfig


def zoom(regions: str) -> str:
    """Crop and zoom the located regions.

    Run by the protocol after every locate answer, never called by the model; its presence in
    ``tools`` is what tells TRL that completions carry inserted images.

    Args:
        regions: the boxes of the locate answer.
    """
    return regions


class JointGRPOTrainer(ZoomInGRPOTrainer):
    """GRPO over whole locate-zoom-examine trajectories; ``max_completion_length`` bounds each turn."""

    def __init__(self, *args: Any, protocol: ProtocolConfig, **kwargs: Any):
        if not protocol.examine_in_context:
            raise ValueError("the joint stage needs protocol.examine_in_context: true (set it in the recipe, and "
                             "warm-start with SFT under the same protocol)")
        super().__init__(*args, protocol=protocol, crop_source="annotations", **kwargs)
        self._standalone_tools = []
        self._extras: list[dict] = []

    def _generate(self, prompts: list):
        # `self.tools` is set only while TRL must treat completions as carrying inserted images: during
        # the examine generation, and afterwards for this batch's forward pass if any crop was made.
        # Query 1 is rendered and generated exactly as in the other stages.
        self.tools = None
        prompt_ids, locate_ids, _, completions, logprobs, extra, images, _ = super()._generate(prompts)

        rows = [
            examine_row({"images": imgs, "id": str(i)}, completion[0]["content"], self.protocol)
            for i, (imgs, completion) in enumerate(zip(images, completions))
        ]
        suffixes = [self._suffix_ids(row["prompt"][-1], row["images"][1:], ids) for row, ids in zip(rows, locate_ids)]
        contexts = [p + c + s for p, c, s in zip(prompt_ids, locate_ids, suffixes)]
        all_images = [row["images"] for row in rows]
        flat = [image for group in all_images for image in group]
        pixels = self.processing_class.image_processor(images=flat, return_tensors="pt")
        fields = dict(super(GRPOTrainer, self)._prepare_inputs(pixels))  # the Trainer's device move
        self.tools = [zoom]
        examine_ids, examine_logprobs = self._generate_single_turn(contexts, all_images, fields, num_generations=1,
                                                                   has_tool_images=True)
        texts = self.processing_class.batch_decode(examine_ids, skip_special_tokens=True)

        completion_ids, tool_mask = [], []
        for loc, suffix, exam in zip(locate_ids, suffixes, examine_ids):
            completion_ids.append(loc + suffix + exam)
            tool_mask.append([1] * len(loc) + [0] * len(suffix) + [1] * len(exam))
        if logprobs is not None:
            logprobs = [lp + [0.0] * len(s) + elp for lp, s, elp in zip(logprobs, suffixes, examine_logprobs)]
        completions = [
            [c[0], {"role": "user", "content": f"{len(r['region_boxes'])} zoomed regions"},
             {"role": "assistant", "content": t}]
            for c, r, t in zip(completions, rows, texts)
        ]
        self._extras = [{k: r[k] for k in ("locate_completions", "region_boxes", "crop_windows")} for r in rows]
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["completions/examine_mean_length"].append(sum(map(len, examine_ids)) / len(examine_ids))
        self._metrics[mode]["zoom/mean_regions"].append(sum(len(r["region_boxes"]) for r in rows) / len(rows))
        tool_images = [row["images"][1:] for row in rows]
        self.tools = [zoom] if any(tool_images) else None
        return prompt_ids, completion_ids, tool_mask, completions, logprobs, extra, all_images, tool_images

    def _suffix_ids(self, examine_turn: dict, crops: list, locate_ids: list[int]) -> list[int]:
        """Token ids from the end of the locate answer to the start of the examine answer: the
        end-of-turn token if generation was cut off, then the examine user turn (crops expanded into
        image tokens) and the assistant header."""
        answer = {"role": "assistant", "content": [{"type": "text", "text": "x"}]}
        prefix = [{"role": "user", "content": [{"type": "text", "text": "x"}]}, answer]
        turn = prepare_multimodal_messages([examine_turn], images=crops)
        render = self.processing_class.apply_chat_template
        prefix_ids = render(prefix, tokenize=True, return_dict=False)[0]
        full_ids = render(prefix + turn, tokenize=True, return_dict=False, add_generation_prompt=True)[0]
        eos = self._tokenizer.eos_token_id
        end = max(i for i, t in enumerate(prefix_ids) if t == eos) + 1
        suffix = list(full_ids[end:])
        return suffix if locate_ids and locate_ids[-1] in self.eos_token_ids else [eos, *suffix]

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        inputs = [{**row, **extra} for row, extra in zip(inputs, self._extras)]
        return super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
