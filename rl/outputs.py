"""What every training run leaves in its output folder besides the Trainer's own files:
``zoomin.json`` (protocol and codec the model was trained with), ``recipe.yaml`` + ``command.txt``
(what produced it) and ``curves.png``."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

from transformers import Trainer

from rl.curves import plot_curves
from rl.distributed import end_distributed
from zoomin.checkpoint import CheckpointInfo
from zoomin.protocol import ProtocolConfig


class InfoWriter:
    """Writes ``zoomin.json`` for a run into any folder (final output or a checkpoint)."""

    def __init__(self, protocol: ProtocolConfig, family: str, base_model: str | None):
        self.info = CheckpointInfo(protocol=protocol, family=family, base_model=base_model)

    def __call__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.info.save(folder)


def record_recipe(command: str, argv: list[str] | None, output_dir: str) -> None:
    """Copy the recipe YAML and the exact command line into ``output_dir``."""
    args = list(sys.argv[1:] if argv is None else argv)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if "--config" in args:
        shutil.copyfile(args[args.index("--config") + 1], out / "recipe.yaml")
    (out / "command.txt").write_text(shlex.join(["zoomin", command, *args]) + "\n")


def finish(trainer: Trainer, write_info: InfoWriter, title: str) -> None:
    """Save the final model and processor, the metadata and the curves (main process only for files)."""
    trainer.save_model(trainer.args.output_dir)
    trainer.save_state()
    if trainer.is_world_process_zero():
        out = Path(trainer.args.output_dir)
        trainer.processing_class.save_pretrained(out)
        write_info(out)
        plot_curves(trainer.state.log_history, out / "curves.png", title)
    end_distributed(trainer)
