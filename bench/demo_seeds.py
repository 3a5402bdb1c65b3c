"""The demo over several seeds: the per-seed table of its headline figures, with min / median / max.

    OMP_NUM_THREADS=1 .venv/bin/python bench/demo_seeds.py --seeds 0 1 2 --out runs/seeds

Each seed runs ``zoomin demo --seed N`` in its own process (as ``make demo SEED=N`` does; the seed
reaches the data, the model's initialisation and every stage), one after another so that the wall
times are those of a lone run. A seed whose folder already holds ``metrics.json`` and ``timing.json``
is read, not rerun (``--rerun`` forces it). ``--set STAGE.KEY=VALUE`` is passed to every seed's
``zoomin demo``, so a variant of the recipe runs over the seeds with one command. Prints a markdown
table, writes it to OUT/seeds.md and the numbers to OUT/seeds.json, and checks each figure against
the demo's targets. A GRPO stage's reward gain is its reward on 64 held-out prompts after its last step
minus before its first (``reward_trends.json``; TRL's evaluation, the same random draws both times).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGETS: dict[str, tuple[str, float]] = {
    "accuracy": (">=", 0.90),
    "two_stage_gain": (">=", 0.05),
    "random_crop_drop": (">=", 0.05),
    "iou": (">=", 0.30),
    "examine_format_error_rate": ("<=", 0.02),
    "locate_reward_gain": (">", 0.0),
    "examine_reward_gain": (">", 0.0),
    "worst_drop_vs_sft": ("<=", 0.02),
    "seconds": ("<=", 900.0),
}
"""The demo's targets (issue 11), per seed."""
HEADLINE = ("accuracy", "f1", "auroc", "iou", "bleu2", "rougeL")
"""Metrics that GRPO must not lower by more than 0.02 below SFT-only."""


def run_seed(seed: int, out: Path, rerun: bool, settings: list[str]) -> dict:
    folder = out / f"seed{seed}"
    if rerun or not (folder / "timing.json").is_file():
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        started = time.perf_counter()
        with (out / f"seed{seed}.log").open("w") as log:
            subprocess.run([sys.executable, "-m", "rl.cli", "demo", "--out", str(folder), "--seed", str(seed),
                            *(f"--set={s}" for s in settings)],
                           env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
        (folder / "timing.json").write_text(json.dumps({"seconds": time.perf_counter() - started}))
    return figures(folder)


def figures(folder: Path) -> dict:
    """The headline figures of one demo run folder."""
    metrics = json.loads((folder / "metrics.json").read_text())
    sft, final = metrics["sft"], metrics["sft+grpo"]
    trends = json.loads((folder / "reward_trends.json").read_text())
    drops = {k: sft[k] - final[k] for k in HEADLINE if sft.get(k) is not None and final.get(k) is not None}
    return {
        "accuracy": final["accuracy"],
        "preliminary_accuracy": final["preliminary_accuracy"],
        "random_crop_accuracy": final["random_crop_accuracy"],
        "two_stage_gain": final["accuracy"] - final["preliminary_accuracy"],
        "random_crop_drop": final["accuracy"] - final["random_crop_accuracy"],
        "iou": final["iou"],
        "examine_format_error_rate": final["examine_format_error_rate"],
        "sft_accuracy": sft["accuracy"],
        "sft_iou": sft["iou"],
        "locate_reward_gain": trends["locate"][1] - trends["locate"][0],
        "examine_reward_gain": trends["examine"][1] - trends["examine"][0],
        "worst_drop_vs_sft": max(drops.values()),
        "worst_drop_metric": max(drops, key=drops.get),
        "seconds": json.loads((folder / "timing.json").read_text())["seconds"],
    }


def meets(name: str, value: float) -> bool:
    op, bound = TARGETS[name]
    return {">=": value >= bound, "<=": value <= bound, ">": value > bound}[op]


def table(rows: dict[int, dict]) -> str:
    columns = ["accuracy", "preliminary_accuracy", "random_crop_accuracy", "two_stage_gain", "random_crop_drop",
               "iou", "examine_format_error_rate", "locate_reward_gain", "examine_reward_gain", "worst_drop_vs_sft",
               "seconds"]
    lines = ["| seed | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for seed, row in rows.items():
        cells = [_cell(c, row[c]) for c in columns]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    for label, fn in (("min", min), ("median", statistics.median), ("max", max)):
        lines.append(f"| {label} | " + " | ".join(_fmt(c, fn(r[c] for r in rows.values())) for c in columns) + " |")
    lines.append("| target | " + " | ".join(" ".join(map(str, TARGETS[c])) if c in TARGETS else "" for c in columns)
                 + " |")
    return "\n".join(lines)


def _fmt(column: str, value: float) -> str:
    return f"{value:.0f}" if column == "seconds" else f"{value:.3f}"


def _cell(column: str, value: float) -> str:
    text = _fmt(column, value)
    return text if column not in TARGETS or meets(column, value) else f"**{text}** (missed)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="runs/seeds")
    ap.add_argument("--rerun", action="store_true", help="rerun seeds whose results exist")
    ap.add_argument("--set", action="append", default=[], metavar="STAGE.KEY=VALUE", dest="settings",
                    help="a change to the demo's recipe, passed to every seed's zoomin demo")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = {seed: run_seed(seed, out, args.rerun, args.settings) for seed in args.seeds}
    text = table(rows)
    (out / "seeds.md").write_text(text + "\n")
    (out / "seeds.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(text)
    missed = sorted({c for row in rows.values() for c in TARGETS if not meets(c, row[c])})
    print("\nall targets met for every seed" if not missed else f"\ntargets missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
