"""``zoomin export``: a training run -> the two-stage ZoomIn checkpoint people download.

The result is a plain transformers folder (merged weights as safetensors, config, processor) plus
``zoomin.json``, the recipe that produced it and a model card with the metrics of ``zoomin eval``.
It is written atomically (:func:`zoomin.checkpoint.write_checkpoint_atomically`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedModel

from zoomin.checkpoint import CheckpointInfo, write_checkpoint_atomically

ADAPTER_FILE = "adapter_config.json"
CARRIED = ("recipe.yaml", "command.txt", "curves.png")
"""Files of the training run copied into the checkpoint, when present."""


def load_merged(run_dir: Path) -> PreTrainedModel:
    """The run's model with any LoRA adapter merged into its base weights."""
    if not (run_dir / ADAPTER_FILE).is_file():
        return AutoModelForImageTextToText.from_pretrained(run_dir, use_safetensors=True)
    from peft import PeftConfig, PeftModel

    base_path = PeftConfig.from_pretrained(run_dir).base_model_name_or_path
    base = AutoModelForImageTextToText.from_pretrained(base_path, use_safetensors=True)
    return PeftModel.from_pretrained(base, run_dir).merge_and_unload()


def export(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    metrics: dict | None = None,
    datasets: list[str] | None = None,
    license: str = "apache-2.0",
    overwrite: bool = False,
) -> Path:
    """Write the ZoomIn checkpoint of training run ``run_dir`` (or one of its checkpoints) to ``out_dir``."""
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"no such training folder: {run}")
    info = CheckpointInfo.load(run)
    model = load_merged(run)
    processor = AutoProcessor.from_pretrained(run)

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)  # safetensors is the only format transformers 5 writes
        processor.save_pretrained(tmp)
        info.save(tmp)
        for name in CARRIED:
            if (run / name).is_file():
                shutil.copyfile(run / name, tmp / name)
        (tmp / "README.md").write_text(model_card(info, metrics, datasets or [], license, run))

    return write_checkpoint_atomically(out_dir, write, overwrite=overwrite)


def model_card(info: CheckpointInfo, metrics: dict | None, datasets: list[str], license: str, run: Path) -> str:
    """A Hub model card: the standard metadata block, what the model does, its metrics and recipe."""
    meta = {
        "base_model": info.base_model,
        "license": license,
        "library_name": "transformers",
        "pipeline_tag": "image-text-to-text",
        "tags": ["zoomin", "ai-generated-image-detection", "visual-grounding", "grpo", info.family],
        "datasets": datasets,
    }
    header = "---\n" + "\n".join(f"{k}: {json.dumps(v)}" for k, v in meta.items() if v) + "\n---\n"
    lines = [
        header,
        "# ZoomIn detector\n",
        "Tells real images from AI-generated ones and shows where the evidence is: query 1 *locates*",
        "suspicious regions as boxes, the regions are zoomed and shown again, and query 2 *examines* them",
        "and gives the verdict with an explanation. Prompts, crop policy and box convention are in",
        "`zoomin.json`; the weights load with plain `AutoModelForImageTextToText`.\n",
        "```bash",
        "zoomin detect photo.jpg --checkpoint THIS_FOLDER --save-viz out/",
        "```\n",
        f"Base model: `{info.base_model}` ({info.family}).\n",
    ]
    if metrics:
        lines += ["## Evaluation (`zoomin eval`)\n", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
                  for k, v in metrics.items() if isinstance(v, (int, float))]
        lines.append("")
    if (run / "recipe.yaml").is_file():
        lines += ["## Recipe\n", "```yaml", (run / "recipe.yaml").read_text().rstrip(), "```\n"]
    if (run / "command.txt").is_file():
        lines += ["Trained with:\n", "```bash", (run / "command.txt").read_text().rstrip(), "```\n"]
    return "\n".join(lines)


def push_to_hub(folder: Path, repo_id: str, private: bool = False) -> str:
    """Upload an exported folder to the Hugging Face Hub (needs a token; not exercised in tests)."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(folder_path=str(folder), repo_id=repo_id).commit_url
