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
advantages and the loss. Every use of TRL's internals for this sits in :mod:`rl.trl_adapter`.
Rewards see the examine answer as the completion and the columns of
:func:`zoomin.formats.zoom_columns` (the locate answer, the regions shown and the windows cropped).
"""

from __future__ import annotations

from typing import Any

from trl.data_utils import prepare_multimodal_messages

from rl import trl_adapter as trl
from rl.trainer import ZoomInGRPOTrainer
from zoomin.formats import zoom_columns
from zoomin.protocol import ProtocolConfig
from zoomin.zoom import zoom_answer


class JointGRPOTrainer(ZoomInGRPOTrainer):
    """GRPO over whole locate-zoom-examine trajectories; ``max_completion_length`` bounds each turn."""

    def __init__(self, *args: Any, protocol: ProtocolConfig, **kwargs: Any):
        if not protocol.examine_in_context:
            raise ValueError("the joint stage needs protocol.examine_in_context: true (set it in the recipe, and "
                             "warm-start with SFT under the same protocol)")
        super().__init__(*args, protocol=protocol, crop_source="annotations", **kwargs)

    def _generate(self, prompts: list) -> trl.Generation:
        # Query 1 is rendered and generated exactly as in the other stages.
        first = trl.generate_plain(self, prompts)
        answers = [completion[0]["content"] for completion in first.completions]
        queries = [zoom_answer(images[0], answer, self.protocol) for images, answer in zip(first.images, answers)]
        suffixes = [self._suffix_ids(query.messages[-1], query.crops, ids)
                    for query, ids in zip(queries, first.completion_ids)]
        contexts = [p + c + s for p, c, s in zip(first.prompt_ids, first.completion_ids, suffixes)]
        all_images = [query.images for query in queries]
        pixels = self.processing_class.image_processor(images=[im for group in all_images for im in group],
                                                       return_tensors="pt")
        examine_ids, examine_logprobs = trl.generate_after_insert(self, contexts, all_images,
                                                                  trl.to_device(self, pixels))
        texts = self.processing_class.batch_decode(examine_ids, skip_special_tokens=True)

        turns = list(zip(first.completion_ids, suffixes, examine_ids))
        completion_ids = [loc + suffix + exam for loc, suffix, exam in turns]
        tool_mask = [trl.trajectory_mask([(len(loc), True), (len(suffix), False), (len(exam), True)])
                     for loc, suffix, exam in turns]
        logprobs = first.logprobs
        if logprobs is not None:
            logprobs = [lp + [0.0] * len(s) + elp for lp, s, elp in zip(logprobs, suffixes, examine_logprobs)]
        completions = [
            [c[0], {"role": "user", "content": f"{len(q.crops)} zoomed regions"}, {"role": "assistant", "content": t}]
            for c, q, t in zip(first.completions, queries, texts)
        ]
        trl.log_mean(self, "completions/examine_mean_length", [len(ids) for ids in examine_ids])
        trl.log_mean(self, "zoom/mean_regions", [len(q.crops) for q in queries])
        tool_images = [query.crops for query in queries]
        trl.declare_inserted_images(self, any(tool_images))
        # per-rollout reward columns, which TRL adds to each row the reward functions receive
        columns = [zoom_columns(q.region_boxes, q.crop_windows, a) for q, a in zip(queries, answers)]
        extra_fields = {**first.extra_fields, **{name: [c[name] for c in columns] for name in columns[0]}}
        return trl.Generation(first.prompt_ids, completion_ids, tool_mask, completions, logprobs, extra_fields,
                              all_images, tool_images)

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
        eos = self.processing_class.tokenizer.eos_token_id
        end = max(i for i, t in enumerate(prefix_ids) if t == eos) + 1
        suffix = list(full_ids[end:])
        return suffix if locate_ids and locate_ids[-1] in self.eos_token_ids else [eos, *suffix]
