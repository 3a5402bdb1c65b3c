"""Reward terms for ZoomIn GRPO: plain TRL reward functions of text and annotations.

Every term is called as ``term(completions, **columns) -> list[float | None]`` (TRL's sync reward
signature) and is a picklable object whose ``__name__`` is its registry name. Terms never raise on
model output and never return NaN or inf. None means "this prompt cannot be judged" and depends only
on the prompt's columns, so it is the same for a whole group: TRL sums the weighted terms with
``nansum``, so a None counts as 0 in the completion's reward. See docs/rewards.md for each term's
definition, range, what it pays for and what it refuses.

This package imports neither ``rl``, ``trl`` nor ``transformers``; torchmetrics is imported only
when an explanation term is first called.
"""

from rewards._text import completion_text
from rewards.boxes import BoxF1, BoxIoU
from rewards.explanation import Bleu2, RougeL
from rewards.fmt import FormatReward
from rewards.registry import DEFAULT_REWARDS, REWARDS, build_rewards, get_reward
from rewards.verdict import VerdictReward
from rewards.zoom import ZoomCitations, ZoomConsistency, ZoomCoverage, ZoomValidCrops, ZoomVerdictAgreement

__all__ = [
    "DEFAULT_REWARDS",
    "REWARDS",
    "Bleu2",
    "BoxF1",
    "BoxIoU",
    "FormatReward",
    "RougeL",
    "VerdictReward",
    "ZoomCitations",
    "ZoomConsistency",
    "ZoomCoverage",
    "ZoomValidCrops",
    "ZoomVerdictAgreement",
    "build_rewards",
    "completion_text",
    "get_reward",
]
