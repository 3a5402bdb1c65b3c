"""Set-up for multi-process runs that the launchers leave to the training script."""

from __future__ import annotations

import os

import torch
from transformers import PreTrainedModel


def prepare_distributed() -> None:
    """Make a multi-process launch on a machine without accelerators one gloo job.

    Call it before the arguments are parsed. Neither ``accelerate launch`` nor ``torchrun`` tells
    the worker processes to run on the CPU (``accelerate launch --cpu`` even starts a single
    process), and the Trainer of a process that sees no GPU and no ``use_cpu`` sets up no process
    group: N processes would train N unrelated copies. ``ACCELERATE_USE_CPU`` is the Trainer's own
    switch for ``use_cpu``; set before the arguments are parsed (parsing creates the process group),
    it starts gloo in time for ZeRO-3 to partition a second model (GRPO's reference model) as it loads.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not _has_accelerator():
        os.environ["ACCELERATE_USE_CPU"] = "true"


def _has_accelerator() -> bool:
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6 knows every device type
    return accelerator.is_available() if accelerator else torch.cuda.is_available()


def keep_checkpoint_names(model: PreTrainedModel) -> None:
    """Save under the tensor names the model was loaded with, also when it loaded under ZeRO-3.

    transformers renames checkpoint tensors on load and reverts the renamings on save. Loading
    under ``deepspeed.zero.Init`` (ZeRO-3 with ``zero3_init_flag``) keeps every renaming it knows,
    not only those that matched, and reverting an unmatched prefix rule saves Qwen2.5-VL's language
    model as ``model.model.layers.*``: transformers reloads that, vLLM and other loaders do not.
    Keeping only the renamings that were used is what the non-ZeRO-3 load does.
    """
    conversions = getattr(model, "_weight_conversions", None)
    if conversions:
        model._weight_conversions = [c for c in conversions if c.was_used()]
