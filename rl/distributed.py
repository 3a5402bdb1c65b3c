"""Set-up for multi-process runs that the launchers leave to the training script."""

from __future__ import annotations

import logging
import os
import sys

import torch
from transformers import PreTrainedModel, Trainer

logger = logging.getLogger(__name__)


def prepare_distributed(argv: list[str] | None) -> list[str]:
    """The command-line arguments, with ``--use_cpu true`` added for a multi-process run without accelerators.

    Neither ``accelerate launch`` nor ``torchrun`` tells its processes to use the CPU (``accelerate
    launch --cpu`` even starts a single process). A Trainer that sees no GPU and no ``use_cpu`` sets
    up no process group, so N processes would silently train N unrelated copies. With ``use_cpu``
    the Trainer starts gloo while the arguments are parsed, early enough for ZeRO-3 to partition a
    second model (GRPO's reference model) as it loads, and DeepSpeed still runs.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not _has_accelerator():
        logger.warning("%d processes and no GPU: training on the CPU with gloo (--use_cpu true)", world_size)
        args += ["--use_cpu", "true"]  # the last value given wins, over the recipe's too
    return args


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


def end_distributed(trainer: Trainer) -> None:
    """Let the ranks leave together: wait for every rank, then close the process group.

    Without it each rank exits as soon as its own part is done, its process group still open while
    the main process writes the final model; a rank once aborted at exit that way ("terminate called
    without an active exception", gloo under DeepSpeed), failing a launch whose training had succeeded.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        trainer.accelerator.wait_for_everyone()
        torch.distributed.destroy_process_group()
