"""The output folder, written so that a killed run loses nothing and repeats nothing.

``DIR/data.jsonl`` holds the MagniFake records, ``DIR/rejected.jsonl`` one line per rejected record
(``id``, ``stage``, ``reason``, ``error``), ``DIR/images/`` copies of source images that lie outside
``DIR``, and ``DIR/run.json`` the settings and tallies of the last run. Every input id ends in
exactly one line of the two JSONL files:

* a record is written as one whole line (one ``write`` of the line and its newline, then flush and
  fsync) only after everything it needs (its copied image) is in place;
* on start, a last line without its newline (a write cut by a kill) is cut off, so that record is
  done again; every other line must be a record this tool wrote, with an id seen nowhere else;
* the ids of both files are the ones already done, and a rerun skips them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

DATA = "data.jsonl"
REJECTED = "rejected.jsonl"
RUN = "run.json"
IMAGES = "images"
FAILED_STAGES = frozenset({"request", "timeout", "internal"})
"""Rejection stages that are the endpoint's (or this tool's) fault, not the record's:
``--retry-failed`` gives those records another try."""


class OutputError(ValueError):
    """The output folder holds something this tool did not write; the message says where."""


class Output:
    """Append-only writer of one output folder."""

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.dir = Path(out_dir)
        self._files: dict[str, Any] = {}
        self.cut_lines: dict[str, int] = {}
        """Per file, how many bytes of a half-written last line were cut off on opening."""

    def open(self, retry_failed: bool = False) -> set[str]:
        """Repair, read and open both files for appending; return the ids already done.

        With ``retry_failed`` the rejections of stages in :data:`FAILED_STAGES` are removed first
        (the file is rewritten atomically), so those records are done again.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        done: dict[str, str] = {}
        for name in (DATA, REJECTED):
            path = self.dir / name
            self.cut_lines[name] = _cut_partial_line(path)
            keep = []
            for where, row in _rows(path):
                if retry_failed and name == REJECTED and row.get("stage") in FAILED_STAGES:
                    continue
                if row["id"] in done:
                    raise OutputError(f"{where}: id {row['id']!r} is already recorded at {done[row['id']]}; "
                                      "each id may appear once in data.jsonl and rejected.jsonl together")
                done[row["id"]] = where
                keep.append(row)
            if retry_failed and name == REJECTED and path.exists():
                _rewrite(path, keep)
        for partial in (self.dir / IMAGES).glob("*.partial"):
            partial.unlink()
        self._files = {name: (self.dir / name).open("ab") for name in (DATA, REJECTED)}
        return set(done)

    def write_record(self, row: dict) -> None:
        self._append(DATA, row)

    def write_rejection(self, row: dict) -> None:
        self._append(REJECTED, row)

    def _append(self, name: str, row: dict) -> None:
        f = self._files[name]
        f.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())

    def place_image(self, path: Path, record_id: str) -> str:
        """The record's ``image`` field: the path relative to ``DIR`` when the image lies inside it,
        else a byte-for-byte copy under ``DIR/images/`` (re-encoding would change the pixels the
        annotation describes). The copy is written under a temporary name and renamed, so a kill
        never leaves a half-copied image behind a written record."""
        source, root = path.resolve(), self.dir.resolve()
        if source.is_relative_to(root):
            return source.relative_to(root).as_posix()
        digest = hashlib.sha1(record_id.encode("utf-8")).hexdigest()[:8]
        suffix = source.suffix.lower()
        stem = record_id[: -len(suffix)] if suffix and record_id.lower().endswith(suffix) else record_id
        name = f"{re.sub(r'[^A-Za-z0-9._-]+', '_', stem)[:80]}-{digest}{suffix}"
        dest = self.dir / IMAGES / name
        dest.parent.mkdir(exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        shutil.copyfile(source, partial)
        os.replace(partial, dest)
        return f"{IMAGES}/{name}"

    def previous_run(self) -> dict | None:
        try:
            return json.loads((self.dir / RUN).read_text())
        except (OSError, ValueError):
            return None

    def write_run(self, run: dict) -> None:
        _atomic_write(self.dir / RUN, json.dumps(run, indent=2) + "\n")

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}


def _cut_partial_line(path: Path) -> int:
    """Cut a last line that lacks its newline (a write interrupted by a kill); return bytes cut."""
    if not path.exists():
        return 0
    with path.open("rb+") as f:
        data = f.read()
        keep = data.rfind(b"\n") + 1
        if keep < len(data):
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    return len(data) - keep


def _rows(path: Path):
    if not path.exists():
        return
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{lineno}"
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                raise OutputError(f"{path}:{lineno} is not a record written by `zoomin data annotate`; "
                                  "fix or remove that line, or write to a new folder")
            yield where, row


def _rewrite(path: Path, rows: list[dict]) -> None:
    _atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
