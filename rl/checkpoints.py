"""Training checkpoints: marking them complete, and resuming only from complete ones.

The Trainer writes a checkpoint folder piece by piece; a job killed mid-save leaves a folder that
looks like a checkpoint but isn't. After the Trainer has finished saving, :class:`CompletionMarker`
writes the ZoomIn metadata (``zoomin.json``, atomically) into the folder; a checkpoint is complete
exactly when that file is there, and :func:`resolve_resume` never picks one without it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from zoomin.checkpoint import ZOOMIN_FILE

_STEP = re.compile(r"^checkpoint-(\d+)$")
RESUME_LAST = ("last", "true", "auto")


class CompletionMarker(TrainerCallback):
    """Writes ``zoomin.json`` into each checkpoint once the Trainer has saved everything else."""

    def __init__(self, write_info: Callable[[Path], None]):
        self.write_info = write_info

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if state.is_world_process_zero:
            self.write_info(Path(args.output_dir) / f"checkpoint-{state.global_step}")


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / ZOOMIN_FILE).is_file() and (checkpoint / "trainer_state.json").is_file()


def last_complete_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The highest-step checkpoint in ``output_dir`` that finished saving, or None."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    steps = sorted(
        ((int(m.group(1)), p) for p in root.iterdir() if (m := _STEP.match(p.name)) and p.is_dir()), reverse=True
    )
    return next((p for _, p in steps if is_complete(p)), None)


def resolve_resume(value: str | bool | None, output_dir: str) -> str | None:
    """Turn ``--resume_from_checkpoint`` into a checkpoint path (or None to start fresh).

    ``last``/``true``/``auto`` mean the newest complete checkpoint in ``output_dir`` (starting fresh
    if there is none); a path must be a complete checkpoint.
    """
    if value in (None, False, "", "false", "none"):
        return None
    if value is True or str(value).lower() in RESUME_LAST:
        found = last_complete_checkpoint(output_dir)
        return str(found) if found else None
    path = Path(str(value))
    if not path.is_dir():
        raise ValueError(f"resume_from_checkpoint: no such folder: {path}")
    if not is_complete(path):
        raise ValueError(f"resume_from_checkpoint: {path} was not completely saved (no {ZOOMIN_FILE}); "
                         f"use 'last' to pick the newest complete checkpoint")
    return str(path)
