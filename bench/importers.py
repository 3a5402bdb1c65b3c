"""Import throughput: a generated SynthScars-layout split imported by copying and by hard-linking.

    .venv/bin/python bench/importers.py --n 5000 --side 256

Writes ``--n`` noisy PNGs of ``--side`` px with two polygon regions each and their annotation file
in SynthScars' layout (untimed), then times ``zoomin.importers.import_synthscars`` into a fresh
folder with copies and again with hard links, and a plain ``shutil.copyfile`` of every image for
reference. Each import decodes every image once (what makes the folder validate as written), so
decoding is most of the cost; a hard link saves the byte copy and the disk space.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from zoomin.importers import import_synthscars


def fixture(root: Path, n: int, side: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    images = root / "train" / "images"
    images.mkdir(parents=True)
    tiles = [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(8)]
    items = []
    for i in range(n):
        Image.fromarray(tiles[i % len(tiles)]).save(images / f"{i:05d}.png", compress_level=1)
        a, b = rng.uniform(0, side / 2, 2), rng.uniform(side / 2, side, 2)
        refs = [{"sentence": "region", "explanation": f"artifact {k}",
                 "segmentation": [[float(x), float(y), float(x) + 20, float(y), float(x) + 10, float(y) + 25]]}
                for k, (x, y) in enumerate((a, b))]
        items.append({str(i): {"img_file_name": f"{i:05d}.png", "caption": "Two artifacts.", "refs": refs}})
    (root / "train" / "annoations").mkdir()
    (root / "train" / "annoations" / "train.json").write_text(json.dumps(items))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--side", type=int, default=256)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "SynthScars"
        fixture(src, args.n, args.side)
        megabytes = sum(p.stat().st_size for p in (src / "train" / "images").iterdir()) / 1e6
        rows = []
        for how, link in (("import, copy", False), ("import, --link", True)):
            t = time.perf_counter()
            report = import_synthscars(src, Path(tmp) / how.replace(" ", "").replace(",", "-"), link=link)
            rows.append((how, report.n_records, time.perf_counter() - t))
            assert report.n_records == args.n and not report.skipped
        plain = Path(tmp) / "plain"
        plain.mkdir()
        t = time.perf_counter()
        for p in (src / "train" / "images").iterdir():
            shutil.copyfile(p, plain / p.name)
        rows.append(("shutil.copyfile of every image (reference)", args.n, time.perf_counter() - t))
    print(f"{args.n} images of {args.side}x{args.side} px, {megabytes:.0f} MB in all\n")
    print("| step | records | seconds | records/s |\n|---|---|---|---|")
    for name, n, secs in rows:
        print(f"| {name} | {n} | {secs:.2f} | {n / secs:,.0f} |")


if __name__ == "__main__":
    main()
