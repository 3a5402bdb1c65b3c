"""SynthScars (LEGION; Hugging Face ``khr0516/SynthScars``, Apache-2.0) -> MagniFake.

Layout, per split: ``<split>/images/*`` and ``<split>/annoations/<split>.json`` (the spelling of
LEGION's README; ``annotations`` is accepted too). The file is a JSON list of one-key objects,
``[{"0": {"img_file_name", "caption", "refs": [{"sentence", "explanation", "segmentation"}]}}, ...]``,
``segmentation`` being a list of flat polygons ``[x1, y1, x2, y2, ...]`` in pixels.

Every image is fully synthetic: label "fake". One box per ref, the bounding box of its polygons
clipped to the image; its note is the ref's explanation (its sentence when the explanation is
empty); the caption is the explanation (composed from the notes when empty). Known blemishes are
handled and reported: a file name whose extension is wrong (``x.png`` annotated, only ``x.jpg``
on disk), a stem present with two extensions (the annotated file is used), an image annotated
twice (the first annotation is kept), empty explanations, degenerate polygons.
"""

from __future__ import annotations

import os
from pathlib import Path

from zoomin.data import read_json
from zoomin.images import DEFAULT_MAX_PIXELS
from zoomin.importers.folder import (
    FALLBACK_NOTE,
    FolderWriter,
    ImportReport,
    composed_explanation,
    record,
    record_id,
)
from zoomin.importers.regions import polygon_box, union

LICENSE = "apache-2.0"
ANNOTATION_FOLDERS = ("annoations", "annotations")


def import_synthscars(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    split: str = "train",
    link: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ImportReport:
    """Import one split of SynthScars from ``src`` (the dataset root, or the split's own folder)."""
    split_dir = Path(src) / split if (Path(src) / split).is_dir() else Path(src)
    annotations = _annotation_file(split_dir, split)
    images = split_dir / "images"
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(images.iterdir()) if images.is_dir() else ():
        by_stem.setdefault(path.stem, []).append(path)
    items = read_json(annotations)
    if not isinstance(items, list):
        raise ValueError(f"{annotations} must hold a JSON list of annotations, got {type(items).__name__}")

    first_item: dict[Path, tuple[str, object]] = {}
    with FolderWriter(out, split, "SynthScars", src, link=link, license=LICENSE, max_pixels=max_pixels) as writer:
        for i, entry in enumerate(items):
            where = f"{annotations.name}[{i}]"
            writer.report.n_items += 1
            if not (isinstance(entry, dict) and len(entry) == 1 and isinstance(next(iter(entry.values())), dict)):
                writer.skip(where, "expected a one-key object {index: annotation}")
                continue
            ann = next(iter(entry.values()))
            name = ann.get("img_file_name")
            if not isinstance(name, str) or not name:
                writer.skip(where, "annotation has no 'img_file_name'")
                continue
            path, problem = _find_image(name, images, split_dir, by_stem)
            if path is None:
                writer.skip(where, problem)
                continue
            if path in first_item:
                earlier, earlier_ann = first_item[path]
                same = "the same annotation" if earlier_ann == ann else "a different annotation"
                writer.skip(where, f"{path.name} is annotated twice ({same}); the annotation at {earlier} is kept")
                continue
            first_item[path] = (where, ann)
            rid = record_id("synthscars", split, path.name)
            if problem:
                writer.repair(where, rid, problem)
            placed = writer.place(where, path.name, path=path)
            if placed is None:
                continue
            image, size = placed
            boxes, notes = _regions(ann.get("refs") or [], size, where, rid, writer)
            explanation = ann.get("caption") if isinstance(ann.get("caption"), str) else ""
            explanation = explanation.strip().strip('"').strip()
            if not explanation and notes:
                explanation = composed_explanation(notes)
                writer.repair(where, rid, "empty caption; the explanation is composed from the region notes")
            generator = ann.get("generator") if isinstance(ann.get("generator"), str) else None
            writer.add(where, record(rid, image, "fake", boxes, notes, explanation, generator=generator,
                                     source="SynthScars"))
    return writer.report


def _annotation_file(split_dir: Path, split: str) -> Path:
    for folder in ANNOTATION_FOLDERS:
        candidate = split_dir / folder / f"{split}.json"
        if candidate.is_file():
            return candidate
    found = [p for folder in ANNOTATION_FOLDERS for p in sorted((split_dir / folder).glob("*.json"))]
    if len(found) == 1:
        return found[0]
    wanted = " or ".join(str(split_dir / f / f"{split}.json") for f in ANNOTATION_FOLDERS)
    raise FileNotFoundError(f"no SynthScars annotations: expected {wanted}")


def _find_image(name: str, images: Path, split_dir: Path, by_stem: dict[str, list[Path]]
                ) -> tuple[Path | None, str | None]:
    """The annotated image file, or a repair note when only its stem matches, or why it is missing."""
    for candidate in (images / name, images / Path(name).name, split_dir / name):
        if candidate.is_file():
            return candidate, None
    siblings = by_stem.get(Path(name).stem, [])
    if len(siblings) == 1:
        return siblings[0], f"annotated as {name!r}, found only {siblings[0].name}; that file is used"
    if siblings:
        listed = ", ".join(p.name for p in siblings)
        return None, f"image {name!r} not found and its stem is ambiguous ({listed})"
    return None, f"image {name!r} not found in {images}"


def _regions(refs: list, size: tuple[int, int], where: str, rid: str, writer: FolderWriter
             ) -> tuple[list[list[float]], list[str]]:
    boxes, notes = [], []
    for r, ref in enumerate(refs):
        at = f"refs[{r}]"
        if not isinstance(ref, dict):
            writer.repair(where, rid, f"{at} dropped: not an object")
            continue
        segmentation = ref.get("segmentation") or []
        if segmentation and not isinstance(segmentation[0], (list, tuple)):
            segmentation = [segmentation]  # one flat polygon given without the outer list
        parts, clipped = [], False
        for p, polygon in enumerate(segmentation):
            converted = polygon_box(polygon, size)
            if converted.box is None:
                writer.repair(where, rid, f"{at}.segmentation[{p}] dropped: {converted.problem}")
            else:
                parts.append(converted.box)
                clipped |= converted.clipped
        if not parts:
            writer.repair(where, rid, f"{at} dropped: no usable polygon")
            continue
        if clipped:
            writer.repair(where, rid, f"{at}: polygon reaches past the {size[0]}x{size[1]} image; box clipped")
        note = _text(ref.get("explanation"))
        if not note:
            note = _text(ref.get("sentence")) or FALLBACK_NOTE
            writer.repair(where, rid, f"{at} has an empty explanation; its note is {note!r}")
        boxes.append(union(parts))
        notes.append(note)
    return boxes, notes


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""
