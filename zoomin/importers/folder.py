"""Writing a MagniFake folder from an importer: records, images (copied or hard-linked), the import report.

An import writes ``DIR/<split>.jsonl``, the images under ``DIR/images/<split>/`` (paths in the
records are relative to ``DIR``, as the data layer expects) and ``DIR/<split>.import_report.json``:
every source item that was skipped or repaired, with where it is and why. Each image is decoded by
:func:`zoomin.images.load_rgb` once it is in place (the size the boxes are clipped to is the upright
size validation will see), so the folder passes ``zoomin data validate`` as it is. The JSONL file
appears only when the import finishes: an interrupted import leaves no half-written split behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType

from zoomin.images import DEFAULT_MAX_PIXELS, ImageProblem, load_rgb

FALLBACK_NOTE = "suspicious region"
"""The note of a region whose source gives no text (the same words the locate target uses)."""


@dataclass
class ImportReport:
    """What an import did, item by item where it did not simply convert."""

    dataset: str
    source: str
    split: str
    records: str
    """The JSONL file written."""
    link: bool
    license: str | None = None
    n_items: int = 0
    """Source items read (annotation entries, rows, lines)."""
    n_records: int = 0
    n_linked: int = 0
    n_copied: int = 0
    """Images copied, including those ``--link`` had to copy (another file system)."""
    n_written: int = 0
    """Images written from bytes held in the source (parquet)."""
    notes: list[str] = field(default_factory=list)
    """Facts about the whole dataset's conversion (e.g. where an explanation comes from)."""
    skipped: list[dict] = field(default_factory=list)
    """``{"item", "reason"}`` per source item left out."""
    repaired: list[dict] = field(default_factory=list)
    """``{"item", "id", "reason"}`` per change made to an imported item (a box clipped or dropped, ...)."""

    def summary(self) -> str:
        images = f"{self.n_linked} linked, {self.n_copied} copied, {self.n_written} written from the source"
        return (f"{self.dataset} {self.split}: {self.n_items} source items -> {self.n_records} records "
                f"({len(self.skipped)} skipped, {len(self.repaired)} repairs; images: {images})")


class FolderWriter:
    """Collects one split's records and images; use as a context manager.

    ``with FolderWriter(...) as out: ...`` writes the JSONL file and the report on a clean exit and
    removes the unfinished JSONL file on an exception.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        split: str,
        dataset: str,
        source: str | os.PathLike,
        *,
        link: bool = False,
        license: str | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        if not re.fullmatch(r"[A-Za-z0-9._-]+", split):
            raise ValueError(f"split name {split!r} must be letters, digits, '.', '_' or '-'")
        self.root = Path(out)
        self.split = split
        self.link = link
        self.max_pixels = max_pixels
        self.records_path = self.root / f"{split}.jsonl"
        self.report_path = self.root / f"{split}.import_report.json"
        self.report = ImportReport(dataset, str(source), split, str(self.records_path), link, license)
        self._ids: set[str] = set()
        self._images: dict[str, str] = {}
        """Relative path of every image placed -> the report counter it added to."""
        self._tmp = self.root / f".{split}.jsonl.partial"
        self._file = None

    def __enter__(self) -> FolderWriter:
        self.root.mkdir(parents=True, exist_ok=True)
        self._file = self._tmp.open("w", encoding="utf-8")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._file.close()
        if kind is not None:
            self._tmp.unlink(missing_ok=True)
            return
        os.replace(self._tmp, self.records_path)
        self.report_path.write_text(json.dumps(asdict(self.report), indent=2, ensure_ascii=False) + "\n")

    # ---- what importers call ---------------------------------------------------------------------
    def skip(self, item: str, reason: str) -> None:
        self.report.skipped.append({"item": item, "reason": reason})

    def repair(self, item: str, record_id: str, reason: str) -> None:
        self.report.repaired.append({"item": item, "id": record_id, "reason": reason})

    def place(self, item: str, name: str, *, path: Path | None = None, data: bytes | None = None,
              expect_size: tuple[int, int] | None = None) -> tuple[str, tuple[int, int]] | None:
        """Put one image at ``images/<split>/<name>`` from a file (``path``) or bytes (``data``).

        Returns its path relative to the folder and its upright ``(width, height)``, or None after
        recording why the item is skipped (missing, undecodable, over ``max_pixels``, a name taken,
        not the ``expect_size`` its annotations were made for).
        """
        relative = PurePosixPath("images", self.split, *_safe_parts(name))
        if str(relative) in self._images:
            self.skip(item, f"its image name {name!r} is already taken by another item of this import")
            return None
        dest = self.root / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.unlink(missing_ok=True)
        try:
            if data is not None:
                dest.write_bytes(data)
                how = "n_written"
            else:
                how = self._link_or_copy(path, dest)
        except OSError as e:
            self.skip(item, f"cannot read image {path}: {e}")
            return None
        try:
            size = load_rgb(dest, self.max_pixels).size
        except ImageProblem as e:
            dest.unlink(missing_ok=True)
            self.skip(item, str(e).replace(str(dest), str(path) if path is not None else name))
            return None
        if expect_size is not None and tuple(expect_size) != size:
            dest.unlink(missing_ok=True)
            self.skip(item, f"annotated for {expect_size[0]}x{expect_size[1]} but the image is {size[0]}x{size[1]}")
            return None
        setattr(self.report, how, getattr(self.report, how) + 1)
        self._images[str(relative)] = how
        return str(relative), size

    def add(self, item: str, record: dict) -> bool:
        """Write one record (its image already placed); a repeated id skips the item."""
        if record["id"] in self._ids:
            self.skip(item, f"duplicate id {record['id']!r}")
            (self.root / record["image"]).unlink(missing_ok=True)
            how = self._images.pop(record["image"])
            setattr(self.report, how, getattr(self.report, how) - 1)
            return False
        self._ids.add(record["id"])
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.report.n_records += 1
        return True

    def _link_or_copy(self, src: Path, dest: Path) -> str:
        if self.link:
            try:
                os.link(src, dest)
                return "n_linked"
            except OSError as e:
                if not src.is_file():
                    raise
                if not any("link" in n for n in self.report.notes):
                    self.report.notes.append(f"--link: some images were copied instead ({e.strerror})")
        shutil.copyfile(src, dest)
        return "n_copied"


def record(
    rid: str,
    image: str,
    label: str,
    boxes: list[list[float]],
    notes: list[str],
    explanation: str,
    *,
    generator: str | None = None,
    source: str | None = None,
) -> dict:
    """A MagniFake record in the schema's field order."""
    return {"id": rid, "image": image, "label": label, "boxes": boxes, "explanation": explanation,
            "generator": generator, "source": source, "region_notes": notes}


def composed_explanation(notes: list[str]) -> str:
    """An explanation from the region notes alone, citing them as the protocol does ("Region i")."""
    return " ".join(f"Region {i}: {note.strip().rstrip('.')}." for i, note in enumerate(notes, start=1))


def record_id(*parts: str) -> str:
    """A stable id from the source's own identity: ``parts`` joined by '-', other characters as '_'."""
    return "-".join(re.sub(r"[^A-Za-z0-9._-]+", "_", str(p)).strip("_") for p in parts)


def _safe_parts(name: str) -> list[str]:
    """The components of a relative file name, without any that would climb out of the folder."""
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
    if not parts:
        raise ValueError(f"image name {name!r} has no file name")
    return parts
