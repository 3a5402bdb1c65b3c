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
  ids of the examine generation. Once TRL passes the engine's ids itself (``vllm_prompt_ids``), the
  collapse steps aside for TRL's calls, and this package's own generations hand theirs through that
  argument (:func:`trl_sends_unexpanded_ids`). Server mode needs none of this in 1.16: the server's
  image features are placed at the runs of the trainer's own expanded ids.
* **No vision token sampled.** HF generation suppresses the vision placeholders through
  ``suppress_tokens``; under vLLM the same ids go in ``SamplingParams.bad_words`` through
  ``generation_kwargs`` (:func:`with_vision_guard`), in both modes.
* **Pre-flight.** :func:`check_vllm` rejects, before any weights load, the settings vLLM cannot honour;
  :mod:`rl.preflight` adds the context length the stage's rollouts need and the engine's processor.
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
the engine; its presence says TRL no longer sends expanded ids, and our override accepts it."""


def trl_sends_unexpanded_ids(trainer_cls: type = GRPOTrainer) -> bool:
    """Whether this TRL's ``_generate_single_turn`` takes the engine's ids apart from the trained ones (so
    they go through that argument, and the collapse never runs on ids TRL made)."""
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


def check_vllm(run: Any, world_size: int = 1) -> None:
    """Reject ``use_vllm`` settings the engine cannot honour; call before any weights load.

    Raises :class:`rl.config.RecipeError` naming the setting.
    """
    from rl.config import RecipeError

    if not run.use_vllm:
        return
    if importlib.util.find_spec("vllm") is None:
        raise RecipeError("use_vllm: true, but vLLM is not installed in this environment (pip install vllm; "
                          "on the CPU see `make vllm-env`)")
    check_vllm_settings(run, world_size)


def check_vllm_settings(run: Any, world_size: int = 1) -> None:
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


def engine_processor_problem(model_dir: str, protocol: ProtocolConfig) -> str | None:
    """Why the vLLM engine would see images otherwise than the trainer, or None.

    TRL builds the engine from the model folder (``LLM(model=...)``; a ``trl vllm-serve`` server from
    the folder it is given), so the engine's processor is the one saved there. When the stage's pixel
    budget differs from that folder's, the engine would expand every image to another token count than
    the trained ids: rollouts off the trained context.
    """
    from transformers import AutoImageProcessor

    saved = BoxCodec.from_processor(protocol.codec.family, AutoImageProcessor.from_pretrained(model_dir))
    if (saved.min_pixels, saved.max_pixels) == (protocol.codec.min_pixels, protocol.codec.max_pixels):
        return None
    return (f"the vLLM engine loads its processor from {model_dir}, which resizes images to {saved.min_pixels}-"
            f"{saved.max_pixels} pixels, but this stage's pixel budget is {protocol.codec.min_pixels}-"
            f"{protocol.codec.max_pixels}: rollouts would be sampled from other image tokens than are trained; "
            "start from a checkpoint saved under the budget (a ZoomIn SFT stage's output) or use_vllm: false")
