"""MagniFake records: the schema, loading from JSONL, a JSON array or a `datasets` dataset, and validation.

One record per line (``.jsonl``; a ``.json`` file holding one array of records is read too): ``id``, ``image`` (path relative to the dataset root, or an image), ``label``
("real"|"fake"), ``boxes`` (``[x1, y1, x2, y2]`` pixels of the upright original image, may be
empty), ``explanation``; optional ``generator``, ``source``, ``region_notes`` (one note per box).

Validation reports *every* bad record with where it is and why, and loading either skips bad
records (writing the report) or stops on the first one under ``strict``; nothing is dropped
silently. A long training run must never die on record 19,873 of 20,000.

Text files may start with a byte-order mark (UTF-8, or UTF-16 as some public datasets ship): it
is read as such, never as part of the first record.
"""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from zoomin.boxes import box_problem
from zoomin.images import DEFAULT_MAX_PIXELS, ImageProblem, load_rgb

LABELS = ("real", "fake")
REQUIRED = {"id": str, "image": (str, Image.Image), "label": str, "boxes": list, "explanation": str}
OPTIONAL = {"generator": (str, type(None)), "source": (str, type(None)), "region_notes": (list, type(None))}


class DataError(ValueError):
    """Raised by strict loading on the first bad record; the message names the record."""


@dataclass
class Record:
    """A validated MagniFake record. ``image`` is an absolute path or an in-memory image."""

    id: str
    image: str | Image.Image
    label: str
    boxes: list[list[float]]
    explanation: str
    image_size: tuple[int, int]
    """``(width, height)`` of the upright image: the frame the boxes live in."""
    generator: str | None = None
    source: str | None = None
    region_notes: list[str] | None = None

    def load_image(self, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
        return load_rgb(self.image, max_pixels)


@dataclass
class Finding:
    """One problem with one record."""

    where: str
    """``file:line`` for JSONL, ``file[N]`` (0-based) for a JSON array, ``row N`` for a datasets dataset."""
    id: str | None
    reason: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        rid = f" (id {self.id})" if self.id is not None else ""
        return f"{self.where}{rid}: {self.severity}: {self.reason}"


@dataclass
class Report:
    source: str
    n_records: int = 0
    n_good: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def summary(self) -> str:
        bad = self.n_records - self.n_good
        return (f"{self.source}: {self.n_records} records, {self.n_good} good, {bad} bad, "
                f"{len(self.warnings)} warnings")

    def write(self, path: str | os.PathLike) -> None:
        payload = {
            "source": self.source,
            "n_records": self.n_records,
            "n_good": self.n_good,
            "findings": [asdict(f) for f in self.findings],
        }
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(payload, indent=2))


def load_records(
    source: str | os.PathLike | Any,
    root: str | os.PathLike | None = None,
    *,
    strict: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    report_path: str | os.PathLike | None = None,
    limit: int | None = None,
) -> tuple[list[Record], Report]:
    """Load and validate MagniFake records, returning the good ones and the report.

    ``source`` is a ``.jsonl`` file or a ``.json`` file holding an array of records (image paths
    relative to ``root``, by default the file's folder), a folder written by
    ``datasets.Dataset.save_to_disk``, or a ``datasets.Dataset``.
    Bad records are skipped and listed in the report (also written to ``report_path``); with
    ``strict`` the first bad record raises :class:`DataError` instead. ``limit`` reads only the first
    that many rows (a pre-flight's sample: every image is decoded, which takes minutes on 20k photographs).
    """
    rows, name, default_root = _rows(source)
    root_path = Path(root if root is not None else default_root).resolve()
    report = Report(source=name)
    records: list[Record] = []
    seen: set[str] = set()
    for where, row in rows:
        if limit is not None and report.n_records >= limit:
            break
        report.n_records += 1
        record, findings = _check(where, row, root_path, seen, max_pixels)
        report.findings.extend(findings)
        errors = [f for f in findings if f.severity == "error"]
        if errors and strict:
            raise DataError(f"bad record: {errors[0]}")
        if record is not None and not errors:
            report.n_good += 1
            records.append(record)
    if report_path is not None:
        report.write(report_path)
    return records, report


def _rows(source: Any) -> tuple[Iterator[tuple[str, Any]], str, Path]:
    """(where, row) pairs from any supported source, its display name and its default image root."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            import datasets

            if (path / "dataset_dict.json").exists():
                splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
                raise FileNotFoundError(f"{path} holds the splits {', '.join(splits)}; pass one split's folder, "
                                        f"e.g. {path / (splits[0] if splits else 'train')}")
            if not (path / "dataset_info.json").exists() and not (path / "state.json").exists():
                raise FileNotFoundError(
                    f"{path} is a folder but not a saved `datasets` dataset; pass the .jsonl file instead"
                )
            return _dataset_rows(datasets.load_from_disk(str(path))), str(path), path
        if not path.is_file():
            raise FileNotFoundError(f"MagniFake data not found: {path}")
        if path.suffix.lower() == ".json" and _first_char(path) == "[":
            return _array_rows(path), str(path), path.parent
        return _jsonl_rows(path), str(path), path.parent
    if hasattr(source, "features") and hasattr(source, "__iter__"):
        return _dataset_rows(source), "dataset", Path.cwd()
    raise TypeError(f"cannot read MagniFake records from {type(source).__name__}")


def text_encoding(path: str | os.PathLike) -> str:
    """The codec to read a JSON text file with, from its byte-order mark: UTF-16 when it starts with
    one, UTF-8 otherwise (``utf-8-sig`` drops a UTF-8 mark and reads unmarked UTF-8 unchanged)."""
    with open(path, "rb") as f:
        head = f.read(2)
    return "utf-16" if head in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "utf-8-sig"


def read_json(path: str | os.PathLike) -> Any:
    """A whole JSON file, whatever its byte-order mark; a parse error raises :class:`DataError`
    naming the file, line and column."""
    with open(path, encoding=text_encoding(path), errors="replace") as f:
        text = f.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None


def _first_char(path: Path) -> str:
    with path.open("r", encoding=text_encoding(path), errors="replace") as f:
        for line in f:
            if line.strip():
                return line.lstrip()[0]
    return ""


def _array_rows(path: Path) -> Iterator[tuple[str, Any]]:
    rows = read_json(path)
    if not isinstance(rows, list):
        raise DataError(f"{path} must hold one JSON array of records, got {type(rows).__name__}")
    for i, row in enumerate(rows):
        yield f"{path.name}[{i}]", row


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open("r", encoding=text_encoding(path), errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{lineno}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as e:
                yield where, _Malformed(f"malformed JSON: {e.msg} at column {e.colno}")


def _dataset_rows(ds: Iterable[dict]) -> Iterator[tuple[str, Any]]:
    for i, row in enumerate(ds):
        yield f"row {i}", row


@dataclass
class _Malformed:
    reason: str


def _check(
    where: str, row: Any, root: Path, seen: set[str], max_pixels: int
) -> tuple[Record | None, list[Finding]]:
    """Validate one row; return the record (None if unusable) and its findings."""
    if isinstance(row, _Malformed):
        return None, [Finding(where, None, row.reason)]
    if not isinstance(row, dict):
        return None, [Finding(where, None, f"record must be a JSON object, got {type(row).__name__}")]
    rid = row.get("id")
    rid = str(rid) if isinstance(rid, (str, int)) and not isinstance(rid, bool) else None
    findings: list[Finding] = []

    def bad(reason: str, severity: Literal["error", "warning"] = "error") -> None:
        findings.append(Finding(where, rid, reason, severity))

    for name, kind in REQUIRED.items():
        if name not in row or row[name] is None:
            bad(f"missing field '{name}'")
        elif not isinstance(row[name], kind):
            bad(f"field '{name}' has type {type(row[name]).__name__}, expected {_kind_name(kind)}")
    for name, kind in OPTIONAL.items():
        if name in row and not isinstance(row[name], kind):
            bad(f"field '{name}' has type {type(row[name]).__name__}, expected {_kind_name(kind)} or null")
    if findings:
        return None, findings

    if rid in seen:
        bad(f"duplicate id {rid!r}")
    seen.add(rid)
    label = row["label"]
    if label not in LABELS:
        bad(f"unknown label {label!r}; expected one of {list(LABELS)}")

    image_ref, image_size = _check_image(row["image"], root, max_pixels, bad)

    boxes = row["boxes"]
    if image_size is not None:
        for i, box in enumerate(boxes):
            problem = box_problem(box, image_size)
            if problem:
                bad(f"boxes[{i}]: {problem}")
    notes = row.get("region_notes")
    if notes is not None and len(notes) != len(boxes):
        bad(f"region_notes has {len(notes)} notes for {len(boxes)} boxes", "warning")
    if label == "fake" and not boxes:
        bad("fake image without boxes: it teaches nothing about where artifacts are", "warning")
    if not row["explanation"].strip():
        bad("empty explanation", "warning")

    if any(f.severity == "error" for f in findings) or image_ref is None or image_size is None:
        return None, findings
    return Record(
        id=rid,
        image=image_ref,
        label=label,
        boxes=[[float(v) for v in b] for b in boxes],
        explanation=row["explanation"],
        image_size=image_size,
        generator=row.get("generator"),
        source=row.get("source"),
        region_notes=notes,
    ), findings


def _check_image(image: str | Image.Image, root: Path, max_pixels: int, bad) -> tuple[Any, tuple[int, int] | None]:
    """Resolve and fully decode the image once; return (reference to keep, upright size)."""
    if isinstance(image, Image.Image):
        ref: str | Image.Image = image
    else:
        if os.path.isabs(image):
            bad(f"image path {image!r} is absolute; paths must be relative to the dataset root {root}")
            return None, None
        path = (root / image).resolve()
        if not path.is_relative_to(root):
            bad(f"image path {image!r} escapes the dataset root {root}")
            return None, None
        ref = str(path)
    try:
        decoded = load_rgb(ref, max_pixels)
    except ImageProblem as e:
        bad(str(e))
        return None, None
    return ref, decoded.size


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {"str": "string", "list": "list", "Image": "image", "NoneType": "null"}
    return " or ".join(names.get(k.__name__, k.__name__) for k in kinds if k is not type(None))

