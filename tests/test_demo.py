"""The demo's summary helpers (the whole demo is `make demo`, too slow for the test suite)."""

from __future__ import annotations

import json
from pathlib import Path

from rl.demo import _reward_trend


def test_reward_trend_averages_the_first_and_last_logged_steps(tmp_path: Path) -> None:
    logs = [{"loss": 1.0}, *({"reward": r, "step": i} for i, r in enumerate([0.1, 0.2, 0.3, 0.5, 0.7, 0.9]))]
    logs.append({"train_runtime": 3.0})
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": logs}))
    first, last = _reward_trend(tmp_path)
    assert abs(first - 0.2) < 1e-9 and abs(last - 0.7) < 1e-9
    assert _reward_trend(tmp_path, window=1) == (0.1, 0.9)
