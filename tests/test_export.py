"""Export: a training run becomes a plain transformers folder plus zoomin.json, atomically."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from rl.card import Evaluation
from rl.cli import main as cli
from rl.export import export, pick_examples
from zoomin.checkpoint import CheckpointInfo
from zoomin.synth import synthesize

CPU = ["--attn_implementation", "eager", "--use_cpu", "true", "--bf16", "false", "--report_to", "none",
       "--per_device_train_batch_size", "2", "--max_records", "4", "--max_steps", "1", "--save_strategy", "no",
       "--learning_rate", "1e-2"]


@pytest.fixture(scope="module")
def runs(tiny_vlm, tmp_path_factory):
    """One full fine-tuning and one LoRA SFT run of a single step each."""
    root = tmp_path_factory.mktemp("export")
    synthesize(root / "data", n=8, seed=2)
    out = {}
    for name, extra in (("full", []), ("lora", ["--use_peft", "true", "--lora_r", "4",
                                                "--lora_target_modules", "q_proj", "v_proj"])):
        out[name] = root / name
        assert cli(["sft", "--model_name_or_path", str(tiny_vlm()), "--train_data", str(root / "data" / "train.jsonl"),
                    "--output_dir", str(out[name]), *CPU, *extra]) == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["full", "lora"])
def test_export_loads_with_plain_transformers(runs, tmp_path, kind, tiny_vlm):
    folder = export(runs[kind], tmp_path / "ckpt", datasets=["MagniFake-mini"],
                    evaluation=Evaluation("MagniFake-mini", "test", {"n": 4, "accuracy": 0.5, "iou": 0.25}))
    files = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "processor_config.json", "zoomin.json", "README.md"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    assert "adapter_config.json" not in files  # LoRA is merged
    model = AutoModelForImageTextToText.from_pretrained(folder)
    AutoProcessor.from_pretrained(folder)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    base = AutoModelForImageTextToText.from_pretrained(tiny_vlm())
    changed = any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), base.state_dict().values()))
    assert changed, "the exported weights are the untrained base: the merge or the save lost the update"
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "license: apache-2.0" in card
    assert "base_model:" not in card and "local model folder" in card  # the tiny model is no Hub model
    assert "| Accuracy | 0.5000 |" in card and "MagniFake-mini" in card
    assert CheckpointInfo.load(folder).family == "qwen2_5_vl"


@pytest.mark.slow
def test_interrupted_export_leaves_no_complete_looking_folder(runs, tmp_path, monkeypatch):
    from transformers import PreTrainedModel

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", crash)
    with pytest.raises(KeyboardInterrupt):
        export(runs["full"], tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()
    assert not list(tmp_path.iterdir())


def test_export_of_a_folder_without_zoomin_json_is_a_clear_error(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(ValueError, match="zoomin.json"):
        export(tmp_path / "run", tmp_path / "out")


def test_examples_alternate_fakes_and_reals():
    from zoomin.data import Record

    records = [Record(str(i), "x.png", label, [], "", (8, 8)) for i, label in enumerate(["fake"] * 4 + ["real"] * 2)]
    assert [r.id for r in pick_examples(records, 5)] == ["0", "4", "1", "5", "2"]
    assert [r.id for r in pick_examples(records[:4], 2)] == ["0", "1"]
