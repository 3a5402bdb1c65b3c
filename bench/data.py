"""Data-layer throughput: validation and conversion to GRPO prompt datasets.

    .venv/bin/python bench/data.py --n 2000

Synthesises MagniFake-mini (``--n`` images, untimed), then times ``load_records`` (full decode and
validation of every record), ``grpo_dataset`` for each stage (row building, coordinate frames,
crop windows) and reading rows back with their images attached (what a trainer's dataloader pays).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from zoomin.data import load_records
from zoomin.formats import grpo_dataset
from zoomin.protocol import ProtocolConfig
from zoomin.synth import synthesize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    protocol = ProtocolConfig()
    with tempfile.TemporaryDirectory() as tmp:
        synthesize(tmp, n=args.n, seed=0, test_fraction=0.5)
        paths = [Path(tmp) / "train.jsonl", Path(tmp) / "test.jsonl"]

        t = time.perf_counter()
        records = [r for p in paths for r in load_records(p)[0]]
        rows = [("validate + load", len(records), time.perf_counter() - t)]

        grpo_dataset(records[:2], "locate", protocol)  # warm-up: imports of datasets and transformers
        for stage in ("locate", "examine"):
            t = time.perf_counter()
            ds = grpo_dataset(records, stage, protocol)
            rows.append((f"grpo_dataset({stage})", len(ds), time.perf_counter() - t))
            t = time.perf_counter()
            for i in range(len(ds)):
                ds[i]
            rows.append((f"read {stage} rows with images", len(ds), time.perf_counter() - t))

    print("| step | records | seconds | records/s | 20k records (s) |\n|---|---|---|---|---|")
    for name, n, secs in rows:
        print(f"| {name} | {n} | {secs:.2f} | {n / secs:,.0f} | {20000 * secs / n:.1f} |")


if __name__ == "__main__":
    main()
