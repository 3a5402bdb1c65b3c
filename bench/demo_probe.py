"""Where a demo model's locate and examine answers go wrong, on a demo run folder.

    OMP_NUM_THREADS=1 .venv/bin/python bench/demo_probe.py runs/demo/sft --data runs/demo/data --n 80

Zoom-needed MagniFake-mini annotates grid cells (their size is read from the data's ``meta.json``),
so a located box is right or wrong by cell: for the first ``n`` images of each split this counts
located boxes that are an annotated cell, and splits the first box's miss into row and column, over all
images and apart for images with one cue and with several. For the test split it also counts
malformed examine answers (``detect``) and prints a few. Figures in BENCHMARKS.md "Demo over seeds".
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from zoomin.data import Record, load_records
from zoomin.detector import ZoomInDetector


def cell(box, side: float) -> tuple[int, int]:
    """(column, row) of the grid cell a box starts in."""
    return round(box[0] / side), round(box[1] / side)


def cell_side(data: Path) -> float:
    """The grid cell side in original pixels, from ``meta.json`` of a zoom-needed MagniFake-mini folder."""
    meta = data / "meta.json"
    try:
        args = json.loads(meta.read_text())["args"]
        return args["side"] / args["grid"]
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit(f"{meta}: not the meta.json of a zoom-needed MagniFake-mini folder "
                         f"(`zoomin data synth --zoom-needed` writes one): {e!r}") from e


def locate_figures(detector: ZoomInDetector, records: list[Record], side: float) -> dict:
    """Located boxes judged by grid cell, over all images and apart for images with one cue and with
    several: with several, the first box must take its row and its column from the same cue, and a
    box whose row is one cue's and column another's (``first_box_mixes_cues``) is that binding failing."""
    located = detector.locate_only([r.load_image() for r in records], batch_size=16)
    groups: dict[str, list[dict]] = {"all": [], "one_cue": [], "several_cues": []}
    for record, loc in zip(records, located):
        truth = [cell(b, side) for b in record.boxes]
        found = [cell(b, side) for b in loc.boxes]
        first = found[0] if found else None
        row = first is not None and any(first[1] == t[1] for t in truth)
        col = first is not None and any(first[0] == t[0] for t in truth)
        scores = {"cell_recall": len(set(found) & set(truth)) / len(truth),
                  "any_box_on_a_cell": float(bool(set(found) & set(truth))),
                  "box_count_right": float(len(found) == len(truth)),
                  "first_box_row_right": float(row), "first_box_column_right": float(col),
                  "first_box_on_a_cell": float(first in truth),
                  "first_box_mixes_cues": float(row and col and first not in truth)}
        groups["all"].append(scores)
        groups["one_cue" if len(truth) == 1 else "several_cues"].append(scores)
    return {name: {"images": len(rows), **{key: round(sum(r[key] for r in rows) / len(rows), 3) for key in rows[0]}}
            for name, rows in groups.items() if rows}


def examine_figures(detector: ZoomInDetector, records: list[Record], show: int = 3) -> dict:
    detections = detector.detect([r.load_image() for r in records], batch_size=16)
    problems: Counter[str] = Counter()
    malformed = [d for d in detections if not d.examine_strict]
    for d in malformed:
        problems.update(p for p in d.problems if p.startswith("examine"))
    for d in malformed[:show]:
        print("malformed examine answer:", repr(d.examine_text[:240]))
    return {"malformed_examine": len(malformed) / len(records), "problems": dict(problems.most_common(5))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a run folder of the demo (e.g. runs/demo/sft)")
    ap.add_argument("--data", type=Path, required=True, help="the demo's data folder (train.jsonl, test.jsonl)")
    ap.add_argument("--n", type=int, default=80, help="images per split")
    args = ap.parse_args(argv)
    side = cell_side(args.data)
    detector = ZoomInDetector.from_pretrained(args.run)
    out = {}
    for split in ("train", "test"):
        records = load_records(args.data / f"{split}.jsonl", strict=True)[0][: args.n]
        out[split] = locate_figures(detector, records, side)
    out["test"]["examine"] = examine_figures(detector, records)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
