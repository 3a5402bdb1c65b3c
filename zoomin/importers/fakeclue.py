"""FakeClue (FakeVLM; Hugging Face ``lingcco/FakeClue``, Apache-2.0) -> MagniFake.

``data_json/train.json`` and ``data_json/test.json`` are JSON lists of ``{"image", "label",
"cate", "width", "height", "conversations": [{"from": "human", ...}, {"from": "gpt", "value": ...}]}``;
``label`` is 0 for fake and 1 for real (FakeVLM's evaluation counts ``label == 1`` as real), and
``image`` is relative to the unpacked image folder (``<split>/<cate>/<fake|real>/...``).

Records: the label mapped, the last "gpt" turn as the explanation, ``source`` ``FakeClue/<cate>``.
FakeClue has no regions, so every record has no boxes (validation warns that a fake without boxes
teaches nothing about where artifacts are); it trains and evaluates verdicts and explanations.
"""

from __future__ import annotations

import os
from pathlib import Path

from zoomin.data import read_json
from zoomin.images import DEFAULT_MAX_PIXELS
from zoomin.importers.folder import FolderWriter, ImportReport, record, record_id

LICENSE = "apache-2.0"
LABELS = {0: "fake", 1: "real", "0": "fake", "1": "real", "fake": "fake", "real": "real"}


def import_fakeclue(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    split: str = "train",
    images: str | os.PathLike | None = None,
    link: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImportReport:
    """Import the JSON list ``src``; image paths are relative to ``images`` (default: the JSON file's
    folder, or the folder above it when the file sits in ``data_json/`` as on the Hub)."""
    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"no FakeClue annotation file: {src}")
    roots = [Path(images)] if images is not None else [src.parent, src.parent.parent]
    items = read_json(src)
    if not isinstance(items, list):
        raise ValueError(f"{src} must hold a JSON list, got {type(items).__name__}")
    with FolderWriter(out, split, "FakeClue", src, link=link, license=LICENSE, max_pixels=max_pixels) as writer:
        writer.report.notes.append("FakeClue has no regions: records have no boxes")
        seen: dict[str, str] = {}
        for i, item in enumerate(items):
            where = f"{src.name}[{i}]"
            writer.report.n_items += 1
            if not isinstance(item, dict):
                writer.skip(where, "item is not an object")
                continue
            name = item.get("image")
            if isinstance(name, list) and len(name) == 1:
                name = name[0]
            if not isinstance(name, str) or not name:
                writer.skip(where, "item needs one image path in 'image'")
                continue
            raw = item.get("label")
            label = LABELS.get(raw) if isinstance(raw, (int, str)) and not isinstance(raw, bool) else None
            if label is None:
                writer.skip(where, f"unknown label {item.get('label')!r}; FakeClue uses 0 (fake) and 1 (real)")
                continue
            if name in seen:
                writer.skip(where, f"{name} appears twice; the item at {seen[name]} is kept")
                continue
            seen[name] = where
            path = next((root / name for root in roots if (root / name).is_file()), None)
            if path is None:
                writer.skip(where, f"image not found: {name} (looked in {', '.join(map(str, roots))})")
                continue
            placed = writer.place(where, name, path=path)
            if placed is None:
                continue
            image, _ = placed
            answers = [t.get("value") for t in item.get("conversations") or []
                       if isinstance(t, dict) and t.get("from") == "gpt" and isinstance(t.get("value"), str)]
            explanation = answers[-1].strip() if answers else ""
            cate = item.get("cate")
            rid = record_id("fakeclue", split, str(Path(name).with_suffix("")))
            if not explanation:
                writer.repair(where, rid, "no 'gpt' answer text: kept with an empty explanation")
            writer.add(where, record(rid, image, label, [], [], explanation,
                                     source=f"FakeClue/{cate}" if isinstance(cate, str) and cate else "FakeClue"))
    return writer.report
