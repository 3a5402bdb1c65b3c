"""A PNG of the reward and loss curves, written next to the checkpoint at the end of a run."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(log_history: list[dict], out: str | Path, title: str) -> Path | None:
    """Plot loss and every ``reward*`` series of a Trainer's ``log_history``; None if nothing was logged."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for entry in log_history:
        step = entry.get("step")
        for key, value in entry.items():
            if step is None or not isinstance(value, (int, float)):
                continue
            if key == "loss" or (key.startswith("reward") and not key.endswith("/std")):
                xs, ys = series.setdefault(key, ([], []))
                xs.append(step)
                ys.append(float(value))
    if not series:
        return None
    rewards = {k: v for k, v in series.items() if k != "loss"}
    fig, axes = plt.subplots(1, 2 if rewards else 1, figsize=(11 if rewards else 6, 4), squeeze=False)
    if "loss" in series:
        axes[0][0].plot(*series["loss"], label="loss")
    axes[0][0].set(title="loss", xlabel="step")
    if rewards:
        for key, (xs, ys) in sorted(rewards.items()):
            axes[0][1].plot(xs, ys, label=key.removeprefix("rewards/").removesuffix("/mean"))
        axes[0][1].set(title="rewards (mean)", xlabel="step")
        axes[0][1].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
