"""ms-swift grounding JSONL (the form FakeXplained-style data ships in) -> MagniFake.

One object per line: ``{"images": [path], "messages": [{"role", "content"}, ...], "objects":
{"ref": [...], "bbox": [[x1, y1, x2, y2], ...], "bbox_type": "real"}}``. In ms-swift's grounding
format each ``<ref-object>`` in the messages takes the next ``ref`` and each ``<bbox>`` the next
``bbox``, so a box belongs to the ref written last before it; ``bbox_type`` is ``real`` (pixels, the
default), ``norm1000`` (a 0-1000 grid) or ``norm1`` (0-1).

Records: one box per ``bbox`` (scaled to pixels, clipped), its ref as the note, the last assistant
message as the explanation with each ``<ref-object>`` written out and each ``<bbox>`` replaced by
"(Region i)" (how the examine query cites regions). The label is the row's own ``label`` ("real" or
"fake") when it has one, else ``label`` given to the importer ("fake" by default: FakeXplained's
boxed images are generated ones).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from zoomin.data import read_json, text_encoding
from zoomin.images import DEFAULT_MAX_PIXELS
from zoomin.importers.folder import FALLBACK_NOTE, FolderWriter, ImportReport, record, record_id
from zoomin.importers.regions import scaled_box

PLACEHOLDER = re.compile(r"<ref-object>|<bbox>")
SCALES = {"real": lambda w, h: (1.0, 1.0), "norm1000": lambda w, h: (w / 1000, h / 1000),
          "norm1": lambda w, h: (float(w), float(h))}


def import_swift(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    split: str = "train",
    images: str | os.PathLike | None = None,
    label: str = "fake",
    link: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImportReport:
    """Import the JSONL file ``src`` (a ``.json`` array works too); relative image paths are relative
    to ``images`` (default: the file's folder)."""
    src = Path(src)
    if not src.is_file():
        raise FileNotFoundError(f"no ms-swift file: {src}")
    if label not in ("real", "fake"):
        raise ValueError(f"label must be 'real' or 'fake', got {label!r}")
    root = Path(images) if images is not None else src.parent
    with FolderWriter(out, split, "ms-swift", src, link=link, max_pixels=max_pixels) as writer:
        seen: dict[str, str] = {}
        for where, row in _rows(src):
            writer.report.n_items += 1
            if isinstance(row, str):
                writer.skip(where, row)
                continue
            paths = row.get("images") if isinstance(row, dict) else None
            paths = [paths] if isinstance(paths, str) else paths
            if not isinstance(paths, list) or len(paths) != 1 or not isinstance(paths[0], str):
                writer.skip(where, "needs exactly one image path in 'images' (a MagniFake record holds one image)")
                continue
            path = Path(paths[0]) if Path(paths[0]).is_absolute() else root / paths[0]
            if not path.is_file():
                writer.skip(where, f"image not found: {path}")
                continue
            if str(path.resolve()) in seen:
                writer.skip(where, f"{paths[0]} appears twice; the line at {seen[str(path.resolve())]} is kept")
                continue
            seen[str(path.resolve())] = where
            own = str(row.get("label", "")).strip().lower()
            rid = record_id("swift", split, str(row["id"]) if isinstance(row.get("id"), (str, int)) else path.stem)
            placed = writer.place(where, path.name, path=path)
            if placed is None:
                continue
            image, size = placed
            boxes, notes, explanation = _grounding(row, size, where, rid, writer)
            writer.add(where, record(rid, image, own if own in ("real", "fake") else label, boxes, notes,
                                     explanation, source="ms-swift"))
    return writer.report


def _rows(src: Path):
    """(where, row) per line of JSONL, or per element of a JSON array; a malformed line is its reason."""
    if src.suffix.lower() == ".json":
        rows = read_json(src)
        if isinstance(rows, list):
            for i, row in enumerate(rows):
                yield f"{src.name}[{i}]", row
            return
    with src.open(encoding=text_encoding(src), errors="replace") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    yield f"{src.name}:{n}", json.loads(line)
                except json.JSONDecodeError as e:
                    yield f"{src.name}:{n}", f"malformed JSON: {e.msg} at column {e.colno}"


def _grounding(row: dict, size: tuple[int, int], where: str, rid: str, writer: FolderWriter
               ) -> tuple[list[list[float]], list[str], str]:
    objects = row.get("objects") if isinstance(row.get("objects"), dict) else {}
    refs = [str(r) for r in objects.get("ref") or []]
    raw_boxes = objects.get("bbox") or []
    kind = str(objects.get("bbox_type") or "real")
    if kind not in SCALES:
        writer.repair(where, rid, f"unknown bbox_type {kind!r}; its {len(raw_boxes)} boxes are dropped")
        raw_boxes = []
    scale = SCALES.get(kind, SCALES["real"])(*size)
    messages = [m for m in row.get("messages") or [] if isinstance(m, dict) and isinstance(m.get("content"), str)]
    owner = _box_refs(messages, refs, len(raw_boxes))

    boxes, notes, region_of = [], [], {}
    for i, raw in enumerate(raw_boxes):
        converted = scaled_box(raw, size, scale)
        if converted.box is None:
            writer.repair(where, rid, f"objects.bbox[{i}] dropped: {converted.problem}")
            continue
        if converted.clipped:
            writer.repair(where, rid, f"objects.bbox[{i}] reaches past the {size[0]}x{size[1]} image; box clipped")
        note = owner[i].strip() if owner[i] else ""
        if not note:
            note = FALLBACK_NOTE
            writer.repair(where, rid, f"objects.bbox[{i}] has no ref; its note is {note!r}")
        region_of[i] = len(boxes) + 1
        boxes.append(converted.box)
        notes.append(note)
    answers = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    explanation = _written_out(messages, answers[-1], refs, region_of) if answers else ""
    return boxes, notes, explanation


def _box_refs(messages: list[dict], refs: list[str], n_boxes: int) -> list[str | None]:
    """The ref each box belongs to: the last ``<ref-object>`` before its ``<bbox>`` across the messages;
    boxes no placeholder reaches take the ref of the same index, or the only ref."""
    owner: list[str | None] = [None] * n_boxes
    ref_at = box_at = 0
    current = None
    for message in messages:
        for token in PLACEHOLDER.findall(message["content"]):
            if token == "<ref-object>":
                current = refs[ref_at] if ref_at < len(refs) else None
                ref_at += 1
            elif box_at < n_boxes:
                owner[box_at] = current
                box_at += 1
    for i in range(box_at, n_boxes):
        owner[i] = refs[i] if i < len(refs) else (refs[0] if len(refs) == 1 else None)
    return owner


def _written_out(messages: list[dict], answer: int, refs: list[str], region_of: dict[int, int]) -> str:
    """Message ``answer`` with its placeholders filled, counting those of the messages before it."""
    ref_at = box_at = 0
    for message in messages[:answer]:
        for token in PLACEHOLDER.findall(message["content"]):
            ref_at, box_at = (ref_at + 1, box_at) if token == "<ref-object>" else (ref_at, box_at + 1)

    def fill(match: re.Match) -> str:
        nonlocal ref_at, box_at
        if match.group(0) == "<ref-object>":
            ref_at += 1
            return refs[ref_at - 1] if ref_at - 1 < len(refs) else ""
        box_at += 1
        return f" (Region {region_of[box_at - 1]})" if box_at - 1 in region_of else ""

    return re.sub(r"[ \t]{2,}", " ", PLACEHOLDER.sub(fill, messages[answer]["content"])).strip()
