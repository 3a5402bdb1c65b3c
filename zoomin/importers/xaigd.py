"""X-AIGD (Hugging Face ``Coxy7/X-AIGD``, CC-BY-4.0) -> MagniFake.

The dataset is parquet, ``data/<split>-*.parquet`` with splits ``labeled_train``, ``labeled_test``
(and unlabeled ones), columns ``image`` (``{"bytes", "path"}``, PNG or JPEG), ``generator``, ``uid``,
``width``, ``height`` and ``labels``: a list of ``{"label": category, "points": [[x, y], ...]}``
polygons in pixels, one of 7 artifact categories. The released images are all generated (the card
announces the paired real images for later).

Records: label "fake", one box per polygon (bounding box, clipped), the category in words as its
note, ``generator`` from the column. X-AIGD has no free text, so the explanation is composed from
the notes (the report says so once). Rows are read in small batches: a split is gigabytes of image
bytes and is never held in memory whole.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from zoomin.images import DEFAULT_MAX_PIXELS
from zoomin.importers.folder import FolderWriter, ImportReport, composed_explanation, record, record_id
from zoomin.importers.regions import polygon_box

LICENSE = "cc-by-4.0"
CATEGORIES = {
    "low-level-edge_shape": "low-level distortion of edges or shape",
    "low-level-texture": "low-level distortion of texture",
    "low-level-color": "low-level distortion of colour",
    "low-level-symbol": "low-level distortion of symbols or text",
    "high-level-semantics": "high-level semantic anomaly",
    "cognitive-level-commonsense": "cognitive-level violation of common sense",
    "cognitive-level-physics": "cognitive-level violation of physics",
}
"""The 7 artifact categories of X-AIGD's taxonomy, as the note of a box."""
COLUMNS = ["image", "generator", "uid", "width", "height", "labels"]


def import_xaigd(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    split: str = "labeled_train",
    link: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    batch_rows: int = 32,
) -> ImportReport:
    """Import one split from ``src``: a snapshot folder (``data/<split>-*.parquet``), a folder of
    parquet files, or one parquet file. ``link`` has no effect: the images are bytes in the parquet."""
    import pyarrow.parquet as pq

    files = _parquet_files(Path(src), split)
    with FolderWriter(out, split, "X-AIGD", src, link=link, license=LICENSE, max_pixels=max_pixels) as writer:
        writer.report.notes.append("X-AIGD has no free text: each explanation is composed from its boxes' "
                                   "artifact categories")
        seen: set[tuple[str, str]] = set()
        for file in files:
            parquet = pq.ParquetFile(file)
            missing = [c for c in COLUMNS if c not in parquet.schema_arrow.names]
            if missing:
                raise ValueError(f"{file} is not an X-AIGD split: it lacks the column(s) {', '.join(missing)}")
            row_index = 0
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=COLUMNS):
                for row in batch.to_pylist():
                    _add(writer, f"{file.name} row {row_index}", row, split, seen)
                    row_index += 1
    return writer.report


def _parquet_files(src: Path, split: str) -> list[Path]:
    if src.is_file():
        return [src]
    for folder in (src / "data", src):
        found = sorted(folder.glob(f"{split}-*.parquet")) or sorted(folder.glob(f"{split}.parquet"))
        if found:
            return found
    raise FileNotFoundError(f"no parquet files of split {split!r} in {src} (looked for data/{split}-*.parquet)")


def _add(writer: FolderWriter, where: str, row: dict, split: str, seen: set[tuple[str, str]]) -> None:
    writer.report.n_items += 1
    generator, uid = str(row.get("generator") or "unknown"), str(row.get("uid") or "")
    image = row.get("image") or {}
    if not uid or not image.get("bytes"):
        writer.skip(where, "row has no uid or no image bytes")
        return
    if (generator, uid) in seen:
        writer.skip(where, f"{generator}/{uid} appears twice; the first row is kept")
        return
    seen.add((generator, uid))
    rid = record_id("xaigd", split, generator, uid)
    declared = (row.get("width"), row.get("height"))
    placed = writer.place(where, f"{generator}/{uid}{_suffix(image)}", data=image["bytes"],
                          expect_size=declared if all(isinstance(v, int) for v in declared) else None)
    if placed is None:
        return
    path, size = placed
    boxes, notes = [], []
    for i, label in enumerate(row.get("labels") or []):
        converted = polygon_box((label or {}).get("points"), size)
        if converted.box is None:
            writer.repair(where, rid, f"labels[{i}] dropped: {converted.problem}")
            continue
        if converted.clipped:
            writer.repair(where, rid, f"labels[{i}] reaches past the {size[0]}x{size[1]} image; box clipped")
        category = str(label.get("label") or "")
        if category not in CATEGORIES:
            writer.repair(where, rid, f"labels[{i}] has the unknown category {category!r}, kept as its note")
        boxes.append(converted.box)
        notes.append(CATEGORIES.get(category, category or "artifact"))
    writer.add(where, record(rid, path, "fake", boxes, notes, composed_explanation(notes), generator=generator,
                             source="X-AIGD"))


def _suffix(image: dict) -> str:
    """The file extension for an image's bytes: from its stored path, else from its first bytes."""
    suffix = PurePosixPath(str(image.get("path") or "")).suffix.lower()
    if suffix:
        return suffix
    head = image["bytes"][:12]
    if head.startswith(b"\x89PNG"):
        return ".png"
    if head.startswith(b"\xff\xd8"):
        return ".jpg"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return ".webp"
    return ".img"  # the decoder reads the content, not the name
