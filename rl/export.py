"""``zoomin export``: a training run -> the two-stage ZoomIn checkpoint people download.

The result is a plain transformers folder (merged weights as safetensors, config, processor) plus
``zoomin.json`` (protocol and lineage), the recipe that produced it, a model card
(:mod:`rl.card`) with the scores of ``zoomin eval``, example images (``examples/``) with the
evidence pictures the exported model draws on them (``evidence/``), and optionally a Space of it
(``space/``, :mod:`rl.space`). It is written atomically
(:func:`zoomin.checkpoint.write_checkpoint_atomically`): the evidence is drawn inside the temporary
folder, so a checkpoint whose model fails on its own examples is never published.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedModel

from rl.card import Evaluation, Evidence, model_card
from zoomin.checkpoint import CheckpointInfo, write_checkpoint_atomically
from zoomin.data import Record

ADAPTER_FILE = "adapter_config.json"
CARRIED = ("recipe.yaml", "command.txt", "curves.png")
"""Files of the training run copied into the checkpoint, when present."""
EXAMPLES, EVIDENCE = "examples", "evidence"


def load_merged(run_dir: Path) -> PreTrainedModel:
    """The run's model with any LoRA adapter merged into its base weights."""
    if not (run_dir / ADAPTER_FILE).is_file():
        return AutoModelForImageTextToText.from_pretrained(run_dir, use_safetensors=True)
    from peft import PeftConfig, PeftModel

    base_path = PeftConfig.from_pretrained(run_dir).base_model_name_or_path
    base = AutoModelForImageTextToText.from_pretrained(base_path, use_safetensors=True)
    return PeftModel.from_pretrained(base, run_dir).merge_and_unload()


def pick_examples(records: Sequence[Record], n: int) -> list[Record]:
    """Up to ``n`` records, fakes and reals alternating (in file order), so the examples show both."""
    fakes = [r for r in records if r.label == "fake"]
    reals = [r for r in records if r.label != "fake"]
    mixed = [r for pair in zip(fakes, reals) for r in pair]
    longer = fakes if len(fakes) > len(reals) else reals
    return (mixed + longer[len(mixed) // 2 :])[:n]


def export(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    evaluation: Evaluation | None = None,
    datasets: list[str] | None = None,
    license: str = "apache-2.0",
    examples: Sequence[Record] = (),
    space: bool = False,
    model_id: str | None = None,
    device: str = "cpu",
    overwrite: bool = False,
) -> Path:
    """Write the ZoomIn checkpoint of training run ``run_dir`` (or one of its checkpoints) to ``out_dir``.

    ``examples`` are evaluation records: their images go into ``examples/`` and the exported model's
    detections on them into ``evidence/`` and the card. ``model_id`` is the Hub repo the checkpoint
    will live in (the card's name, and the model a pushed Space loads).
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"no such training folder: {run}")
    info = CheckpointInfo.load(run)
    model = load_merged(run)
    processor = AutoProcessor.from_pretrained(run)
    info.protocol.codec.apply_to(processor)  # the exported processor resizes as the model was trained
    name = model_id.split("/")[-1] if model_id else Path(out_dir).name

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)  # safetensors is the only format transformers 5 writes
        processor.save_pretrained(tmp)
        info.save(tmp)
        for carried in CARRIED:
            if (run / carried).is_file():
                shutil.copyfile(run / carried, tmp / carried)
        evidence = _evidence(tmp, model, processor, info, examples, device) if examples else []
        text = {k: (run / f).read_text() if (run / f).is_file() else None
                for k, f in (("recipe", "recipe.yaml"), ("command", "command.txt"))}
        model_card(info, model_name=name, evaluation=evaluation, datasets=datasets, license=license,
                   evidence=evidence, space=space, **text).save(tmp / "README.md")
        if space:
            from rl.space import write_space

            write_space(tmp, model_id=model_id, license=license)

    return write_checkpoint_atomically(out_dir, write, overwrite=overwrite)


def _evidence(folder: Path, model, processor, info: CheckpointInfo, records: Sequence[Record],
              device: str) -> list[Evidence]:
    """Copy the records' images into ``examples/`` and draw the model's detections into ``evidence/``."""
    from zoomin.detector import ZoomInDetector
    from zoomin.viz import save

    (folder / EXAMPLES).mkdir()
    detector = ZoomInDetector(model.to(device), processor, info)
    images = [r.load_image(detector.max_pixels) for r in records]
    found = []
    for record, image, detection in zip(records, images, detector.detect(images)):
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", record.id)
        if isinstance(record.image, str):  # the file as the user has it, bytes and all
            shutil.copyfile(record.image, folder / EXAMPLES / f"{stem}{Path(record.image).suffix.lower()}")
        else:
            image.save(folder / EXAMPLES / f"{stem}.png")
        picture = f"{EVIDENCE}/{stem}.png"
        save(image, detection, folder / picture)
        found.append(Evidence(record.id, record.label, picture, detection.verdict, detection.score))
    return found


def push_to_hub(folder: Path, repo_id: str, private: bool = False) -> dict[str, str]:
    """Upload an exported folder to the Hub (needs a token; not exercised in tests).

    The checkpoint goes to the model repo ``repo_id`` without ``space/``; a ``space/`` goes to the
    Space of the same id (model repos and Spaces are separate namespaces), pointed at that model.
    Returns the commit URL of each upload.
    """
    from huggingface_hub import HfApi

    from rl.space import SPACE, set_space_model

    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    urls = {"model": api.upload_folder(folder_path=str(folder), repo_id=repo_id,
                                       ignore_patterns=[f"{SPACE}/*", "*__pycache__*"]).commit_url}
    if (folder / SPACE).is_dir():
        set_space_model(folder / SPACE, repo_id)
        api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        urls["space"] = api.upload_folder(folder_path=str(folder / SPACE), repo_id=repo_id, repo_type="space",
                                          ignore_patterns=["*__pycache__*"]).commit_url
    return urls
