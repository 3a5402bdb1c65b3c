"""The vision warm-up: exact artifact-map targets, and a run that changes only the vision tower."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rl.cli import main as cli
from rl.warmup import ArtifactProbe, box_coverage
from zoomin.synth import synthesize, synthesize_zoom_needed


def test_box_coverage_is_the_covered_fraction_of_each_token() -> None:
    # A 2x2 token grid of 10 px tokens over a 20x20 image, in row-major order.
    assert box_coverage([[0, 0, 10, 10]], (20, 20), (2, 2), 10).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert box_coverage([[5, 0, 15, 10]], (20, 20), (2, 2), 10).tolist() == [0.5, 0.5, 0.0, 0.0]
    # Overlapping boxes count once; boxes are scaled from original to resized pixels.
    assert box_coverage([[0, 0, 10, 10], [0, 0, 10, 10]], (20, 20), (2, 2), 10).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert box_coverage([[0, 20, 40, 40]], (40, 40), (2, 2), 10).tolist() == [0.0, 0.0, 1.0, 1.0]
    assert box_coverage([], (20, 20), (2, 2), 10).tolist() == [0.0] * 4


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_warmup_trains_the_vision_tower_only(tiny_vlm, tmp_path: Path, family: str) -> None:
    synthesize(tmp_path / "data", n=12, seed=0, test_fraction=0.25, kinds=("checkerboard",), strength=2.5)
    model, out = tiny_vlm(family), tmp_path / "warmup"
    argv = ["warmup", "--model_name_or_path", str(model), "--train_data", str(tmp_path / "data/train.jsonl"),
            "--eval_data", str(tmp_path / "data/test.jsonl"), "--output_dir", str(out), "--max_steps", "3",
            "--per_device_train_batch_size", "4", "--learning_rate", "1e-2", "--use_cpu", "true",
            "--report_to", "none", "--save_strategy", "no", "--logging_steps", "1", "--position_weight", "0.1"]
    assert cli(argv) == 0
    before, after = _weights(model), _weights(out)
    assert before.keys() == after.keys()  # the probe's heads are not saved
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("visual" in k.split(".") for k in changed)
    metrics = json.loads((out / "warmup_metrics.json").read_text())
    assert set(metrics) == {"train", "eval"} and 0.0 <= metrics["eval"]["image_accuracy"] <= 1.0
    for axis in ("rows", "columns"):  # the tiny model's view is 4x4 tokens at most
        assert 0.0 < metrics["eval"][f"position_error_{axis}"] < 4.0
    assert (out / "command.txt").read_text().startswith("zoomin warmup ")
    assert (out / "processor_config.json").exists() and (out / "curves.png").exists()
    assert json.loads((out / "eval_data_report.json").read_text())["n_good"] == 3


def test_position_targets_are_token_centres_in_row_major_order(tiny_vlm) -> None:
    from transformers import AutoModelForImageTextToText

    vlm = AutoModelForImageTextToText.from_pretrained(tiny_vlm())
    assert ArtifactProbe(vlm).position_head is None  # off unless asked for
    probe = ArtifactProbe(vlm, position_weight=0.1)
    merge = probe.merge
    # one image of 2 x 4 merged tokens, then one of 1 x 1
    targets = probe.token_positions(torch.tensor([[1, 2 * merge, 4 * merge], [1, merge, merge]]))
    expected = [[0.25, c] for c in (0.125, 0.375, 0.625, 0.875)] + [[0.75, c] for c in (0.125, 0.375, 0.625, 0.875)]
    assert targets.tolist() == expected + [[0.5, 0.5]]


def test_warmup_refuses_a_missing_data_file(tiny_vlm, tmp_path: Path, capsys) -> None:
    argv = ["warmup", "--model_name_or_path", str(tiny_vlm()), "--train_data", str(tmp_path / "nope.jsonl"),
            "--output_dir", str(tmp_path / "out")]
    assert cli(argv) == 2
    assert "train_data: no such file" in capsys.readouterr().err


@pytest.mark.slow
def test_two_warmups_with_one_seed_give_the_same_weights(tiny_vlm, tmp_path: Path) -> None:
    """The probe's heads are drawn after seeding: torch's initial seed differs per process here, and
    heads drawn before the Trainer seeds made two identical runs differ in most tensors."""
    synthesize_zoom_needed(tmp_path / "data", n=12, seed=0, test_fraction=0.25)
    runs = []
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        torch.manual_seed(int(name.encode()[0]))  # the caller's RNG state must not matter
        argv = ["warmup", "--model_name_or_path", str(tiny_vlm()), "--train_data", str(tmp_path / "data/train.jsonl"),
                "--output_dir", str(tmp_path / name), "--max_steps", "3", "--per_device_train_batch_size", "4",
                "--learning_rate", "1e-2", "--use_cpu", "true", "--report_to", "none", "--save_strategy", "no",
                "--seed", seed]
        assert cli(argv) == 0
        runs.append(_weights(tmp_path / name))
    a, b, c = runs
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)  # the seed is what decides
