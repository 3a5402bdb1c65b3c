"""The demo: its summary helpers, and (slow) that one seed decides every weight of a short run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rl.demo import _reward_trend


def test_reward_trend_averages_the_first_and_last_logged_steps(tmp_path: Path) -> None:
    logs = [{"loss": 1.0}, *({"reward": r, "step": i} for i, r in enumerate([0.1, 0.2, 0.3, 0.5, 0.7, 0.9]))]
    logs.append({"train_runtime": 3.0})
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": logs}))
    first, last = _reward_trend(tmp_path)
    assert abs(first - 0.2) < 1e-9 and abs(last - 0.7) < 1e-9
    assert _reward_trend(tmp_path, window=1) == (0.1, 0.9)


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
