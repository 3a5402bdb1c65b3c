"""The demo: its summary helpers, and (slow) that one seed decides every weight of a short run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rl.config import RecipeError
from rl.demo import reward_trend, stage_overrides


def test_reward_trend_is_the_held_out_reward_before_and_after(tmp_path: Path) -> None:
    logs = [{"eval_reward": 0.4, "step": 0}, *({"reward": r, "step": i} for i, r in enumerate([0.9, 0.1], 1)),
            {"eval_reward": 0.5, "step": 2}, {"reward": 0.2, "step": 3}, {"eval_reward": 0.6, "step": 3},
            {"train_runtime": 3.0}]
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": logs}))
    assert reward_trend(tmp_path) == (0.4, 0.6)
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": logs[1:3]}))
    with pytest.raises(ValueError, match="no evaluation before and after"):
        reward_trend(tmp_path)


def test_settings_become_each_stages_arguments() -> None:
    extra = stage_overrides(["sft.num_train_epochs=4", "warmup.position_weight=10",
                             "grpo_examine.reward_weights=2 1 0.25 0.25", "sft.learning_rate=1e-3"])
    assert extra == {"warmup": ["--position_weight", "10"],
                     "sft": ["--num_train_epochs", "4", "--learning_rate", "1e-3"],
                     "grpo_locate": [],
                     "grpo_examine": ["--reward_weights", "2", "1", "0.25", "0.25"]}


@pytest.mark.parametrize(("setting", "message"), [
    ("sft.learning_rate", "expected STAGE.KEY=VALUE"),
    ("learning_rate=1e-3", "expected STAGE.KEY=VALUE"),
    ("sft.learning_rate= ", "expected STAGE.KEY=VALUE"),
    ("grpo.learning_rate=1e-3", "unknown stage 'grpo'"),
    ("sft.learnig_rate=1e-3", "sft has no setting 'learnig_rate'"),
    ("warmup.num_generations=8", "warmup has no setting 'num_generations'"),
    ("grpo_locate.output_dir=/tmp/x", "the demo sets output_dir itself"),
])
def test_a_bad_setting_is_refused_before_anything_runs(setting: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        stage_overrides([setting])


def test_demo_refuses_a_bad_setting_on_the_command_line(tmp_path: Path, capsys) -> None:
    from rl.cli import main

    assert main(["demo", "--out", str(tmp_path / "demo"), "--set", "sft.learnig_rate=1e-3"]) == 2
    assert "sft has no setting 'learnig_rate'" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()  # nothing was built


def _weights(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    tensors: dict = {}
    for shard in sorted(run_dir.glob("*.safetensors")):
        tensors.update(load_file(shard))
    assert tensors, f"no weights under {run_dir}"
    return tensors


@pytest.mark.slow
def test_same_seed_gives_the_same_weights_and_metrics(tmp_path: Path) -> None:
    """Two short demos with one seed end in identical weights at every stage and identical metrics;
    torch's initial seed differs per process here, so anything drawn before seeding would show."""
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run([sys.executable, "-m", "rl.cli", "demo", "--out", str(out), "--seed", "3", "--n", "40",
                        "--grpo_steps", "2"], check=True, env=env, capture_output=True)
        runs.append(out)
    for stage in ("warmup", "sft", "grpo_locate", "grpo_examine"):
        a, b = _weights(runs[0] / stage), _weights(runs[1] / stage)
        assert a.keys() == b.keys()
        differ = [k for k in a if not torch.equal(a[k], b[k])]
        assert not differ, f"{stage}: {len(differ)} of {len(a)} tensors differ, e.g. {differ[:3]}"
    assert json.loads((runs[0] / "metrics.json").read_text()) == json.loads((runs[1] / "metrics.json").read_text())
