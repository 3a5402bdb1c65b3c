"""The demo's GRPO stages again, from a finished demo run's SFT model, with recipe changes: the cheap
loop for trying GRPO settings (about 5 minutes a seed instead of 15).

    OMP_NUM_THREADS=1 .venv/bin/python bench/demo_grpo.py runs/seeds/seed1 --out runs/grpo/seed1 \
        --set grpo_examine.learning_rate=5e-5

Runs GRPO locate from RUN/sft and GRPO examine after it, as ``zoomin demo`` does (same recipes, seed,
held-out prompts), then evaluates both stages on the test split and prints each headline figure after
SFT (RUN/metrics.json), after GRPO locate and after GRPO examine, with each stage's held-out reward
before and after. Writes OUT/figures.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/rewards.py would shadow the package

from rl import demo  # noqa: E402
from zoomin.data import load_records  # noqa: E402

SHOWN = ("accuracy", "f1", "auroc", "iou", "bleu2", "rougeL", "examine_format_error_rate", "preliminary_accuracy",
         "random_crop_accuracy")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a demo run folder (data/, sft/, metrics.json)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--set", action="append", default=[], metavar="STAGE.KEY=VALUE", dest="settings",
                    help="a change to a GRPO stage's recipe, as for zoomin demo")
    args = ap.parse_args(argv)
    extra = demo.stage_overrides(args.settings)
    seed = _seed(args.run)
    data = args.run / "data"
    demo.grpo_stage("grpo_locate", args.run / "sft", data, args.out, seed, *extra["grpo_locate"])
    demo.grpo_stage("grpo_examine", args.out / "grpo_locate", data, args.out, seed, *extra["grpo_examine"])
    test = load_records(data / "test.jsonl", strict=True)[0]
    figures = {"sft": json.loads((args.run / "metrics.json").read_text())["sft"]}
    for name in ("grpo_locate", "grpo_examine"):
        figures[name] = demo.score(args.out / name, test, seed, progress=False)
    trends = {stage: demo.reward_trend(args.out / f"grpo_{stage}") for stage in ("locate", "examine")}
    (args.out / "figures.json").write_text(json.dumps({"metrics": figures, "reward_trends": trends}, indent=2) + "\n")
    print("| metric | SFT | after GRPO locate | after GRPO examine |\n|---|---|---|---|")
    for key in SHOWN:
        print(f"| {key} | " + " | ".join(f"{figures[n][key]:.3f}" for n in figures) + " |")
    for stage, (before, after) in trends.items():
        print(f"| GRPO {stage} held-out reward, before / after | {before:.3f} / {after:.3f} | | |")
    return 0


def _seed(run: Path) -> int:
    """The seed the demo run was made with (its command line, kept in the SFT folder)."""
    command = run / "sft" / "command.txt"
    words = command.read_text().split()
    if "--seed" not in words:
        raise SystemExit(f"{command}: no --seed; is {run} a zoomin demo folder?")
    return int(words[words.index("--seed") + 1])


if __name__ == "__main__":
    raise SystemExit(main())
