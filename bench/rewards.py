"""Throughput of the reward terms on deterministic mixed valid/broken completions, one process.

Run from the repository root:

    .venv/bin/python bench/rewards.py            # 100,000 fast-term rows, 5,000 explanation rows
    .venv/bin/python bench/rewards.py --quick    # 10x fewer, for a smoke run

Each set is timed the way TRL calls it: every term in turn on the same batch objects (``--batch``
rows), so the decode memo is shared between the terms of a batch exactly as in training. The memo is
cleared between sets. Completions mix the grammar with the failures a policy produces (missing and repeated
tags, junk boxes, huge numbers, box spam, non-ASCII digits, chatter, conversational form, None).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rewards import completion_text, get_reward  # noqa: E402
from rewards._decode import clear_cache  # noqa: E402
from zoomin.codecs import decode_with_frame, encode_with_frame  # noqa: E402
from zoomin.protocol import CropPolicy, ProtocolConfig  # noqa: E402
from zoomin.zoom import crop_window  # noqa: E402

WORDS = ["the", "hands", "show", "extra", "fingers", "texture", "is", "smeared", "lighting", "inconsistent", "shadow", "edge", "region", "natural", "sensor", "noise", "blur", "warped", "text", "garbled", "checkerboard", "pattern", "reflection", "looks", "plausible", "fur", "skin"]

SETS = {
    "locate (format + box_iou + verdict)": ("fast", ["format_locate", "box_iou", "verdict_locate"]),
    "examine (format + verdict + zoom_consistency)": ("fast", ["format_examine", "verdict", "zoom_consistency"]),
    "bleu2": ("text", ["bleu2"]),
    "rouge_l": ("text", ["rouge_l"]),
}


def make_rows(n: int, seed: int = 0) -> tuple[list, list, dict[str, list]]:
    """``n`` rows: locate completions, examine completions and the dataset columns, all deterministic."""
    rng = random.Random(seed)
    protocol, policy = ProtocolConfig(), CropPolicy()
    locate, examine = [], []
    cols: dict[str, list] = {k: [] for k in (
        "label", "boxes", "explanation", "image_size", "coord_frame", "region_boxes", "crop_windows")}
    for _ in range(n):
        w, h = rng.randint(64, 2048), rng.randint(64, 2048)
        frame = (1000, 1000) if rng.random() < 0.5 else (max(28, round(w / 28) * 28), max(28, round(h / 28) * 28))
        label = rng.choice(["real", "fake"])
        gt = [_random_box(rng, w, h) for _ in range(rng.randint(1, 4))] if label == "fake" else []
        pred = [encode_with_frame(_jitter(rng, b, w, h), (w, h), frame) for b in gt] if rng.random() < 0.7 else []
        regions = pred[: policy.max_crops]
        windows = [crop_window(decode_with_frame(r, (w, h), frame), (w, h), policy) for r in regions]
        think = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 60)))
        cites = " ".join(f"Region {rng.randint(1, 5)} is smeared." for _ in range(rng.randint(0, 3)))
        verdict = label if rng.random() < 0.8 else rng.choice(["real", "fake", "AI-generated", "maybe"])
        locate.append(_mangle(rng, protocol.render_locate(think, pred, label).replace(
            f">{protocol.label_word(label)}<", f">{verdict}<")))
        examine.append(_mangle(rng, f"<think>{cites} {think}</think>\n<verdict>{verdict}</verdict>"))
        for key, value in (("label", label), ("boxes", gt), ("image_size", [w, h]), ("coord_frame", list(frame)),
                           ("region_boxes", regions), ("crop_windows", windows),
                           ("explanation", " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 40))))):
            cols[key].append(value)
    return locate, examine, cols


def _random_box(rng: random.Random, w: int, h: int) -> list[float]:
    bw, bh = rng.uniform(0.05, 0.4) * w, rng.uniform(0.05, 0.4) * h
    x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
    return [x, y, x + bw, y + bh]


def _jitter(rng: random.Random, box: list[float], w: int, h: int) -> list[float]:
    dx, dy = 0.1 * (box[2] - box[0]), 0.1 * (box[3] - box[1])
    return [min(max(v + rng.uniform(-d, d), 0), lim) for v, d, lim in zip(box, (dx, dy, dx, dy), (w, h, w, h))]


def _mangle(rng: random.Random, text: str) -> object:
    """About half the answers stay valid; the rest break in one of the ways policies break."""
    kind = rng.randrange(16)
    if kind < 8:
        return text
    return [
        lambda t: t.replace("</verdict>", ""),
        lambda t: t + t,
        lambda t: "Sure! Here is my answer: " + t + " Hope this helps.",
        lambda t: t.replace("[[", "[[99999999,-5,").replace("]]", ",1e309]]"),
        lambda t: t.replace("<boxes>[", "<boxes>[" + "[1,2,3,4]," * 60),
        lambda t: t.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),
        lambda t: [{"role": "assistant", "content": [{"type": "text", "text": t}]}],
        lambda t: rng.choice([None, "", "real", " ".join(rng.choice(WORDS) for _ in range(30))]),
    ][kind - 8](text)


def run_set(names: list[str], completions: list, cols: dict[str, list], batch: int) -> float:
    """Completions per second for ``names`` called in turn on each batch."""
    funcs = [get_reward(n) for n in names]
    clear_cache()
    start = time.perf_counter()
    for i in range(0, len(completions), batch):
        chunk = {k: v[i : i + batch] for k, v in cols.items()}
        chunk["completions"] = completions[i : i + batch]
        for f in funcs:
            f(**chunk)
    return len(completions) / (time.perf_counter() - start)


def parse_rate(completions: list) -> float:
    """Completions per second of the lead's parser alone: the floor under every parsing term's cost."""
    protocol = ProtocolConfig()
    texts = [completion_text(c) for c in completions]
    start = time.perf_counter()
    for t in texts:
        protocol.parse(t, "locate")
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="rows for the fast sets")
    ap.add_argument("--n-text", type=int, default=5_000, help="rows for the explanation terms")
    ap.add_argument("--batch", type=int, default=256, help="rows per reward call (TRL: batch x generations)")
    ap.add_argument("--quick", action="store_true", help="10x fewer rows")
    args = ap.parse_args()
    if args.quick:
        args.n, args.n_text = args.n // 10, args.n_text // 10
    locate, examine, cols = make_rows(args.n)
    print(f"command: {' '.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"{'set':48s} {'rows':>8s} {'completions/s':>14s}")
    print(f"{'ProtocolConfig.parse alone, locate answers':48s} {args.n:8d} {parse_rate(locate):14,.0f}")
    for title, (kind, names) in SETS.items():
        n = args.n if kind == "fast" else args.n_text
        source = locate if names[0] == "format_locate" else examine
        if kind == "text":  # warm the lazy torchmetrics import outside the timing
            run_set(names, source[:2], {k: v[:2] for k, v in cols.items()}, args.batch)
        rate = run_set(names, source[:n], {k: v[:n] for k, v in cols.items()}, args.batch)
        print(f"{title:48s} {n:8d} {rate:14,.0f}")


if __name__ == "__main__":
    main()
