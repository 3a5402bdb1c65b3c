"""What every training run leaves in its output folder besides the Trainer's own files:
``zoomin.json`` (protocol and codec the model was trained with, and its lineage), ``recipe.yaml`` +
``command.txt`` (what produced it) and ``curves.png``."""

from __future__ import annotations

import shlex
import shutil
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from transformers import Trainer

from rl.curves import plot_curves
from rl.distributed import end_distributed
from zoomin.checkpoint import ZOOMIN_FILE, CheckpointInfo, StageRecord
from zoomin.protocol import ProtocolConfig


def origin_of(model: str) -> tuple[str, bool]:
    """``(name, is_local)`` of a model a first stage starts from.

    A folder in the Hugging Face cache (``.../models--ORG--NAME/snapshots/REV``) is the Hub model
    ``ORG/NAME``; any other folder is local (kept as given, so no home folder leaks into a card);
    anything else is the Hub id transformers downloaded.
    """
    path = Path(model)
    if not path.is_dir():
        return model, False
    resolved = path.resolve()
    repo = resolved.parent.parent.name
    if resolved.parent.name == "snapshots" and repo.startswith("models--"):
        return repo.removeprefix("models--").replace("--", "/"), False
    return model, True


class InfoWriter:
    """Writes ``zoomin.json`` for a run into any folder (final output or a checkpoint).

    The lineage is what the starting model carried (a folder with a ``zoomin.json`` is a ZoomIn
    run) plus this stage; a model without one is the origin. ``ended`` is stamped at each write.
    ``budgets`` are the answer budgets (``max_new_tokens``) of the queries this stage trained; the
    other query keeps the starting model's, so a checkpoint is served with the budgets it was
    trained under, not with answers cut mid-explanation.
    """

    def __init__(self, protocol: ProtocolConfig, family: str, model: str, stage: str, argv: list[str] | None,
                 train_data: str, records: int, budgets: dict[str, int] | None = None):
        parent = CheckpointInfo.load(model) if (Path(model) / ZOOMIN_FILE).is_file() else None
        base, local = (parent.base_model, parent.base_model_local) if parent else origin_of(model)
        self.inherited = parent.stages if parent else []
        generation = parent.generation if parent else CheckpointInfo(protocol).generation
        for query, tokens in (budgets or {}).items():
            generation[query] = {**generation[query], "max_new_tokens": tokens}
        self.stage = {"stage": stage, "recipe": recipe_path(argv), "data": train_data, "records": records,
                      "started": _now()}
        self.info = CheckpointInfo(protocol=protocol, family=family, base_model=base, base_model_local=local,
                                   generation=generation,
                                   stages=[*self.inherited, StageRecord(**self.stage, ended=self.stage["started"])])

    def __call__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        replace(self.info, stages=[*self.inherited, StageRecord(**self.stage, ended=_now())]).save(folder)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def recipe_path(argv: list[str] | None) -> str | None:
    """The ``--config`` recipe of a training command line, as given, or None."""
    args = list(sys.argv[1:] if argv is None else argv)
    return args[args.index("--config") + 1] if "--config" in args[:-1] else None


def record_recipe(command: str, argv: list[str] | None, output_dir: str) -> None:
    """Copy the recipe YAML and the exact command line into ``output_dir``."""
    args = list(sys.argv[1:] if argv is None else argv)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    recipe = recipe_path(args)
    if recipe is not None:
        shutil.copyfile(recipe, out / "recipe.yaml")
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
