"""GRPO rollouts with vLLM (``use_vllm: true``), sampled from exactly the context that is trained.

TRL 1.16 runs the engine (colocated in each training process, or a ``trl vllm-serve`` server);
three things are left to this module, each used by :class:`rl.trainer.ZoomInGRPOTrainer`:

* **One expansion per image.** In colocate mode TRL 1.16 hands the engine the processor-*expanded*
  prompt ids (one image pad per visual token) together with the images, and vLLM expands every pad
  again: a one-image prompt with 16 pads reached the engine with 31, so rollouts were sampled from a
  context that is never trained (TRL issues 6294 and 6401; PRs 6718 and 6719 carry the fix for
  prompt and tool-returned images). :func:`engine_prompt_ids` collapses each run of image pads to
  one placeholder, so that vLLM's own expansion rebuilds the trained ids token for token; it covers
  the joint stage's inserted crop turn too, because that turn reaches the engine inside the prompt
  ids of the examine generation. :func:`trl_sends_unexpanded_ids` makes it step aside once TRL
  passes unexpanded ids itself. Server mode needs none of this in 1.16: the server's image features
  are placed at the runs of the trainer's own expanded ids.
* **No vision token sampled.** HF generation suppresses the vision placeholders through
  ``suppress_tokens``; under vLLM the same ids go in ``SamplingParams.bad_words`` through
  ``generation_kwargs`` (:func:`with_vision_guard`), in both modes.
* **Pre-flight.** :func:`check_vllm` rejects, before any weights load, the settings vLLM cannot honour.
"""

from __future__ import annotations

import importlib.util
import inspect
from typing import Any

from trl import GRPOTrainer

from zoomin.codecs import BoxCodec
from zoomin.protocol import ProtocolConfig
from zoomin.special_tokens import vision_token_ids

VLLM_MODES = ("colocate", "server")
UNEXPANDED_IDS_PARAMETER = "vllm_prompt_ids"
"""The argument through which TRL's fix (PR 6718) hands ``_generate_single_turn`` the ids meant for
the engine; its presence says TRL no longer sends expanded ids."""


def trl_sends_unexpanded_ids(trainer_cls: type = GRPOTrainer) -> bool:
    """Whether this TRL already feeds vLLM one placeholder per image (so our collapse must not run)."""
    return UNEXPANDED_IDS_PARAMETER in inspect.signature(trainer_cls._generate_single_turn).parameters


def engine_prompt_ids(prompt_ids: list[list[int]], image_token_id: int) -> list[list[int]]:
    """Each prompt with every run of ``image_token_id`` collapsed to a single token.

    vLLM expands one placeholder per image against the image it is given, so what the engine then
    sees equals the processor-expanded ids that are trained, provided both use the same processor.
    """
    out = []
    for ids in prompt_ids:
        out.append([t for i, t in enumerate(ids) if t != image_token_id or i == 0 or ids[i - 1] != image_token_id])
    return out


def vision_bad_words(model_config: Any, tokenizer: Any) -> list[str]:
    """The vision placeholder and delimiter tokens as vLLM ``bad_words`` (which takes strings)."""
    return tokenizer.convert_ids_to_tokens(vision_token_ids(model_config))


def with_vision_guard(generation_kwargs: dict | None, model_config: Any, tokenizer: Any) -> dict:
    """``generation_kwargs`` for vLLM's ``SamplingParams`` with the vision tokens banned (the user's own
    ``bad_words`` are kept)."""
    kwargs = dict(generation_kwargs or {})
    kwargs["bad_words"] = list(dict.fromkeys([*kwargs.get("bad_words", []), *vision_bad_words(model_config, tokenizer)]))
    return kwargs


def max_image_tokens(codec: BoxCodec, side: int | None = None) -> int:
    """Most visual tokens one image can take: a ``side`` x ``side`` crop, or any image (``None``)."""
    factor = codec.patch_size * codec.merge_size
    if side is None:
        return codec.max_pixels // factor**2
    w, h = codec.frame((side, side))
    return (w // factor) * (h // factor)


def longest_context(protocol: ProtocolConfig, stage: str, processor: Any, max_completion_length: int) -> int:
    """An upper bound on the prompt plus completion tokens of one rollout of ``stage``.

    Text is measured by rendering the stage's messages with the widest region lines (one placeholder
    per image); each image then adds its most tokens: the original at the processor's pixel bound,
    each of ``crop.max_crops`` crops at the crop side. The joint stage holds both answers.
    """
    crops = protocol.crop.max_crops
    regions = [[9999, 9999, 9999, 9999]] * crops
    images = max_image_tokens(protocol.codec) + crops * max_image_tokens(protocol.codec, protocol.crop.resize_longest)

    def text_tokens(messages: list[dict]) -> int:
        text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return len(processor.tokenizer(text)["input_ids"])

    if stage == "locate":
        return text_tokens(protocol.locate_messages()) + max_image_tokens(protocol.codec) + max_completion_length
    # in context, query 2 follows query 1 and its answer (joint: both answers are generated)
    examine = protocol.examine_messages(regions, locate_answer="" if protocol.examine_in_context else None)
    answers = 2 if stage == "joint" else 1
    return text_tokens(examine) + images + answers * max_completion_length


def check_vllm(run: Any, protocol: ProtocolConfig, processor: Any, world_size: int = 1) -> None:
    """Reject ``use_vllm`` settings the engine cannot honour; call before any weights load.

    Raises :class:`rl.config.RecipeError` naming the setting.
    """
    from rl.config import RecipeError

    if not run.use_vllm:
        return
    if importlib.util.find_spec("vllm") is None:
        raise RecipeError("use_vllm: true, but vLLM is not installed in this environment (pip install vllm; "
                          "on the CPU see `make vllm-env`)")
    check_vllm_settings(run, protocol, processor, world_size)


def check_vllm_settings(run: Any, protocol: ProtocolConfig, processor: Any, world_size: int = 1) -> None:
    """The checks of :func:`check_vllm` that need no engine installed (the recipe tests run these)."""
    from rl.config import RecipeError

    if run.vllm_mode not in VLLM_MODES:
        raise RecipeError(f"vllm_mode: {run.vllm_mode!r}; choose one of {', '.join(VLLM_MODES)}")
    if run.vllm_mode == "colocate":
        if not 0 < run.vllm_gpu_memory_utilization <= 1:
            raise RecipeError(f"vllm_gpu_memory_utilization must be in (0, 1], got {run.vllm_gpu_memory_utilization}")
        if world_size % run.vllm_tensor_parallel_size:
            raise RecipeError(f"vllm_tensor_parallel_size {run.vllm_tensor_parallel_size} does not divide the "
                              f"{world_size} training processes")
    elif run.vllm_server_base_url is None and not run.vllm_server_host:
        raise RecipeError("vllm_mode: server needs vllm_server_host (or vllm_server_base_url)")
    needed = longest_context(protocol, run.stage, processor, run.max_completion_length)
    if run.vllm_max_model_length is not None and run.vllm_max_model_length < needed:
        raise RecipeError(f"vllm_max_model_length {run.vllm_max_model_length} is below the longest {run.stage} "
                          f"rollout: up to {needed} tokens of prompt, images and max_completion_length "
                          f"{run.max_completion_length}")
