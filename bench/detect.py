"""Detection throughput: two-stage ZoomIn detection vs query 1 (locate) alone.

    OMP_NUM_THREADS=1 .venv/bin/python bench/detect.py --images 16 --batch-size 8

Builds a random-weight ``small`` VLM (untimed) with a default ``zoomin.json`` (greedy, 128 locate /
320 examine new tokens) and times both paths on MagniFake-mini test images after one warm-up batch.
Random weights rarely emit the end-of-turn token, so every answer runs to its token budget: these
are worst-case figures for the given budgets, and a trained model that stops early is faster.
On a shared 2-core machine, one thread gives steady figures; two threads swing tenfold with the
other load (OpenMP threads wait on each other when a core is taken).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoProcessor

from zoomin.checkpoint import CheckpointInfo
from zoomin.codecs import BoxCodec
from zoomin.data import load_records
from zoomin.detector import ZoomInDetector
from zoomin.protocol import ProtocolConfig
from zoomin.synth import synthesize
from zoomin.tiny import build_tiny_vlm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=16, help="test images to time on")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--family", default="qwen2_5_vl")
    ap.add_argument("--size", default="small")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_vlm(args.family, args.size, Path(tmp) / "model")
        codec = BoxCodec.from_processor(args.family, AutoProcessor.from_pretrained(model_dir))
        CheckpointInfo(ProtocolConfig(codec=codec)).save(model_dir)
        synthesize(Path(tmp) / "mini", n=2 * args.images, seed=0, test_fraction=0.5)
        records, _ = load_records(Path(tmp) / "mini" / "test.jsonl")
        images = [r.load_image() for r in records[: args.images]]
        detector = ZoomInDetector.from_pretrained(model_dir, device=args.device)

        detector.detect(images[: args.batch_size], batch_size=args.batch_size)  # warm-up
        rows = []
        for name, run in (("query 1 only (locate)", detector.locate_only), ("two-stage detect", detector.detect)):
            t = time.perf_counter()
            run(images, batch_size=args.batch_size)
            rows.append((name, time.perf_counter() - t))

    print(f"{args.family} {args.size}, {len(images)} images, batch {args.batch_size}, {args.device}, "
          f"torch threads {torch.get_num_threads()}\n")
    print("| path | seconds | images/s | s/image |\n|---|---|---|---|")
    for name, secs in rows:
        print(f"| {name} | {secs:.2f} | {len(images) / secs:.2f} | {secs / len(images):.2f} |")


if __name__ == "__main__":
    main()
