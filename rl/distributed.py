"""Process-group set-up that the launchers leave to the training script."""

from __future__ import annotations

import os

import torch


def prepare_distributed() -> None:
    """Start DeepSpeed's process group on gloo when running DeepSpeed without GPUs.

    Under ZeRO-3, loading a second model (the reference model when ``beta > 0``, or any model given
    by path) needs the process group before the Trainer would create it, and DeepSpeed would pick
    NCCL by default; on CPU-only machines (tests, CI) that must be gloo.
    """
    uses_deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    if uses_deepspeed and not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import deepspeed

        deepspeed.init_distributed("gloo")
