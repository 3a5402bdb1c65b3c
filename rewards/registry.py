"""Reward terms by name: what recipes refer to, and how a user's own term is found.

``get_reward(name, protocol, **params)`` accepts

* a registry name (a key of :data:`REWARDS`), built with ``protocol`` and ``params``;
* a dotted path ``package.module:attr`` or ``package.module.attr`` to the user's own term, where
  ``attr`` is either a **class** (a factory: instantiated with ``params``, plus ``protocol=`` if its
  constructor takes a ``protocol`` argument; the instance must be callable) or **any other callable**
  (a function or a ready-made instance: used as it is, and then ``params`` must be empty).

Names are checked up front, so a typo in a recipe fails before a model is loaded.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from rewards.boxes import BoxF1, BoxIoU
from rewards.explanation import Bleu2, RougeL
from rewards.fmt import FormatReward
from rewards.verdict import VerdictReward
from rewards.zoom import ZoomCitations, ZoomConsistency, ZoomCoverage, ZoomValidCrops, ZoomVerdictAgreement
from zoomin.protocol import ProtocolConfig

RewardFunc = Callable[..., list]
"""``(completions, **columns) -> list[float | None]``, TRL's sync reward-function signature."""

REWARDS: dict[str, Callable[..., RewardFunc]] = {
    "box_iou": BoxIoU,
    "box_f1": BoxF1,
    "format_locate": partial(FormatReward, name="format_locate", stage="locate", strict=True),
    "format_locate_soft": partial(FormatReward, name="format_locate_soft", stage="locate", strict=False),
    "format_examine": partial(FormatReward, name="format_examine", stage="examine", strict=True),
    "format_examine_soft": partial(FormatReward, name="format_examine_soft", stage="examine", strict=False),
    "verdict": VerdictReward,
    "verdict_locate": partial(VerdictReward, name="verdict_locate", stage="locate"),
    "zoom_valid_crops": ZoomValidCrops,
    "zoom_citations": ZoomCitations,
    "zoom_verdict_agreement": ZoomVerdictAgreement,
    "zoom_coverage": ZoomCoverage,
    "zoom_consistency": ZoomConsistency,
    "bleu2": Bleu2,
    "rouge_l": RougeL,
}
"""Registry name -> factory ``(protocol=..., **params) -> term``; each term's ``__name__`` is its name."""

DEFAULT_REWARDS: dict[str, list[str]] = {
    "locate": ["format_locate", "box_iou"],
    "examine": ["verdict", "bleu2", "format_examine", "zoom_consistency"],
    "joint": ["format_locate", "box_iou", "verdict", "bleu2", "format_examine", "zoom_consistency"],
}
"""The paper's sets per GRPO stage (no verdict reward in the locate stage: it hurt). In the joint
stage the locate terms read the ``locate_completions`` column, the others the examine answer."""


def get_reward(reward: str, /, protocol: ProtocolConfig | None = None, **params: Any) -> RewardFunc:
    """Build one reward term from a registry name or a dotted path (see the module docstring).

    ``reward`` is positional-only so that ``name=...`` reaches the term (to log it under another name).
    """
    protocol = protocol if protocol is not None else ProtocolConfig()
    if not isinstance(reward, str):
        raise ValueError(f"a reward name must be a string, got {type(reward).__name__}")
    if reward in REWARDS:
        try:
            return REWARDS[reward](protocol=protocol, **params)
        except TypeError as e:
            raise ValueError(f"bad parameters for reward {reward!r}: {e}") from e
    if ":" in reward or "." in reward:
        return _from_path(reward, protocol, params)
    raise ValueError(
        f"unknown reward {reward!r}; registry names: {', '.join(sorted(REWARDS))}; "
        "or give a dotted path 'package.module:attr' to your own term"
    )


def _from_path(path: str, protocol: ProtocolConfig, params: dict[str, Any]) -> RewardFunc:
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"reward path {path!r} must look like 'package.module:attr' or 'package.module.attr'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"reward path {path!r}: cannot import module {module_name!r}: {e}") from e
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ValueError(f"reward path {path!r}: module {module_name!r} has no attribute {attr!r}") from None
    if inspect.isclass(obj):
        kwargs = dict(params)
        if "protocol" in inspect.signature(obj).parameters:
            kwargs.setdefault("protocol", protocol)
        try:
            obj = obj(**kwargs)
        except TypeError as e:
            raise ValueError(f"bad parameters for reward {path!r}: {e}") from e
    elif params:
        raise ValueError(
            f"reward {path!r} is a ready-made callable and takes no parameters (got {sorted(params)}); "
            "make it a class to give it parameters"
        )
    if not callable(obj):
        raise ValueError(f"reward {path!r} is not callable")
    return obj


def build_rewards(
    names: Sequence[str],
    weights: Sequence[float] | None = None,
    protocol: ProtocolConfig | None = None,
    params: Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Any] | None] | None = None,
) -> tuple[list[RewardFunc], list[float]]:
    """Terms and their weights for TRL's ``reward_funcs``/``reward_weights``.

    ``params`` gives the terms' parameters either by name (a mapping; every term of that name gets
    them) or by position (a list aligned with ``names``, None for no parameters), which is how one
    term is used twice with different parameters. Weights default to 1 each. A weights or params
    list of the wrong length, a non-finite weight, a params key not in ``names`` or two terms logging
    under the same ``__name__`` raise ValueError.
    """
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise ValueError(f"reward names must be a non-empty list of names, got {names!r}")
    names = list(names)
    per_term = _params_per_term(names, params)
    if weights is None:
        weights = [1.0] * len(names)
    elif isinstance(weights, str) or not isinstance(weights, Sequence) or len(weights) != len(names):
        got = f"{len(weights)} reward weights" if isinstance(weights, Sequence) else f"weights {weights!r}"
        raise ValueError(f"got {got} for {len(names)} rewards {names}; give one weight per reward")
    for n, w in zip(names, weights):
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            raise ValueError(f"the weight of reward {n!r} must be a finite number, got {w!r}")
    funcs = [get_reward(n, protocol, **p) for n, p in zip(names, per_term)]
    logged = [getattr(f, "__name__", type(f).__name__) for f in funcs]
    clashes = sorted({n for n in logged if logged.count(n) > 1})
    if clashes:
        raise ValueError(
            f"several rewards would log as {clashes}; give them distinct names "
            "(a 'name' parameter, with params given as a list aligned with the names)"
        )
    return funcs, [float(w) for w in weights]


def _params_per_term(names: list[str], params: object) -> list[dict[str, Any]]:
    if params is None:
        return [{} for _ in names]
    if isinstance(params, Mapping):
        stray = sorted(set(params) - set(names))
        if stray:
            raise ValueError(f"reward params given for {stray}, which are not among the rewards {names}")
        return [dict(params.get(n) or {}) for n in names]
    if isinstance(params, Sequence) and not isinstance(params, str) and len(params) == len(names):
        return [dict(p or {}) for p in params]
    raise ValueError(
        f"reward params must be a mapping by name or a list of {len(names)} mappings aligned with {names}"
    )
