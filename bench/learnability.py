"""What a small random-weight vision tower learns on the CPU: the vision warm-up on one MagniFake-mini set.

    OMP_NUM_THREADS=1 .venv/bin/python bench/learnability.py --kinds checkerboard --strength 2.5 --side 112 112

Synthesises MagniFake-mini with the given artifact kinds, strength and image sides, builds the
``small`` model, runs ``recipes/tiny/warmup.yaml`` on the train split and prints the probe heads'
accuracy on the test split with the wall time. This is how the demo's data settings were chosen:
the held-out image accuracy says whether the tower can see the artifacts at all within the budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # bench/ holds a rewards.py that would shadow the package

from rl import warmup  # noqa: E402
from zoomin.synth import ARTIFACT_KINDS, synthesize  # noqa: E402
from zoomin.tiny import build_tiny_vlm  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1200, help="images, train + test (20%% test)")
    ap.add_argument("--kinds", nargs="+", default=list(ARTIFACT_KINDS))
    ap.add_argument("--strength", type=float, default=1.0)
    ap.add_argument("--side", type=int, nargs=2, default=(112, 112), metavar=("MIN", "MAX"))
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--family", default="qwen2_5_vl")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synthesize(root / "data", n=args.n, seed=0, min_side=args.side[0], max_side=args.side[1],
                   kinds=args.kinds, strength=args.strength)
        build_tiny_vlm(args.family, "small", root / "model")
        start = time.perf_counter()
        warmup.main(["--config", str(REPO / "recipes/tiny/warmup.yaml"), "--model_name_or_path", str(root / "model"),
                     "--train_data", str(root / "data/train.jsonl"), "--eval_data", str(root / "data/test.jsonl"),
                     "--output_dir", str(root / "warmup"), "--num_train_epochs", str(args.epochs),
                     "--report_to", "none", "--disable_tqdm", "true"])
        seconds = time.perf_counter() - start
        metrics = json.loads((root / "warmup/warmup_metrics.json").read_text())
    print(json.dumps({"args": vars(args), "seconds": round(seconds), **metrics}))


if __name__ == "__main__":
    main()
