"""What goes into the annotation pipeline: the labelled images, and each image as it is sent.

A source is a JSONL file (one record a line), a JSON file (a list of records), or a folder with
``real/`` and ``fake/`` subfolders. A record needs ``id``, ``image`` (a path relative to the file's
folder) and ``label`` (``real``/``fake`` or a protocol alias such as "AI-generated"); ``source`` and
``generator`` are carried over when present. In a folder, an image's id is its path below the
folder, and a subfolder of ``fake/`` names the generator (``fake/sdxl/001.png``).

Problems that make the whole source ambiguous (a line that is not JSON, a record without an id, an
id used twice) stop the run before any request is made, naming the line: every output line is
keyed by id, so such a source cannot be annotated exactly once. Problems of one record (no image
field, an unknown label, a file that does not decode) reject that record only, with the reason.
"""

from __future__ import annotations

import base64
import io
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PIL import Image

from zoomin.codecs import BoxCodec
from zoomin.images import DEFAULT_MAX_PIXELS, load_rgb
from zoomin.protocol import ProtocolConfig

PROCESSOR_DEFAULTS = {
    "qwen2_5_vl": {"patch_size": 14, "merge_size": 2, "min_pixels": 3136, "max_pixels": 12845056},
    "qwen2_vl": {"patch_size": 14, "merge_size": 2, "min_pixels": 3136, "max_pixels": 12845056},
    "qwen3_vl": {"patch_size": 16, "merge_size": 2, "min_pixels": 65536, "max_pixels": 16777216},
}
"""Resize settings of each family's released image processor (its ``preprocessor_config.json``),
which a vLLM server uses unless it is started with other ``--mm-processor-kwargs``."""


class SourceError(ValueError):
    """The source cannot be annotated as it is; the message names the file and line."""


@dataclass(frozen=True)
class Item:
    """One input record. ``problem`` is set when the record itself is unusable."""

    id: str
    image: Path | None
    label: str | None
    source: str | None = None
    generator: str | None = None
    problem: str | None = None


def read_source(src: str | os.PathLike, source_name: str | None = None) -> list[Item]:
    """Every record of ``src`` in order; ``source_name`` fills ``source`` where a record has none."""
    path = Path(src)
    if path.is_dir():
        items = _folder_items(path)
    elif path.is_file():
        items = _file_items(path)
    else:
        raise SourceError(f"no such file or folder: {path}")
    if source_name is not None:
        items = [it if it.source else replace(it, source=source_name) for it in items]
    return items


def _folder_items(root: Path) -> list[Item]:
    if not (root / "real").is_dir() and not (root / "fake").is_dir():
        raise SourceError(f"{root} has neither a real/ nor a fake/ subfolder (or pass a .jsonl/.json file)")
    extensions = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    items = []
    for label in ("real", "fake"):
        folder = root / label
        if not folder.is_dir():
            continue
        for file in sorted(folder.rglob("*")):
            if not file.is_file() or file.name.startswith(".") or file.suffix.lower() not in extensions:
                continue
            parts = file.relative_to(folder).parts
            generator = parts[0] if label == "fake" and len(parts) > 1 else None
            items.append(Item(id=file.relative_to(root).as_posix(), image=file, label=label, generator=generator))
    if not items:
        raise SourceError(f"{root}/real and {root}/fake hold no image files")
    return items


def _file_items(path: Path) -> list[Item]:
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise SourceError(f"{path} is not valid JSON: {e}") from None
        if not isinstance(rows, list):
            raise SourceError(f"{path} must hold a JSON list of records, got {type(rows).__name__}")
        numbered = [(f"{path.name}[{i}]", row) for i, row in enumerate(rows)]
    else:
        numbered = []
        with path.open(encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    numbered.append((f"{path.name}:{lineno}", json.loads(line)))
                except json.JSONDecodeError as e:
                    raise SourceError(f"{path.name}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
    protocol = ProtocolConfig()
    seen: dict[str, str] = {}
    items = []
    for where, row in numbered:
        item = _row_item(where, row, path.parent, protocol)
        if item.id in seen:
            raise SourceError(f"{where}: id {item.id!r} is used again (first at {seen[item.id]}); ids must be unique")
        seen[item.id] = where
        items.append(item)
    return items


def _row_item(where: str, row: Any, root: Path, protocol: ProtocolConfig) -> Item:
    if not isinstance(row, dict):
        raise SourceError(f"{where}: a record must be a JSON object, got {type(row).__name__}")
    rid = row.get("id")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or not str(rid).strip():
        raise SourceError(f"{where}: record without a usable 'id' (got {rid!r}); every record needs one")
    rid = str(rid)
    extras = {k: row[k] if isinstance(row.get(k), str) else None for k in ("source", "generator")}
    image, label = row.get("image"), row.get("label")
    if not isinstance(image, str) or not image:
        return Item(rid, None, None, **extras, problem=f"{where}: field 'image' must be a path, got {image!r:.60}")
    canonical = protocol.canonical_label(label) if isinstance(label, str) else None
    if canonical is None:
        return Item(rid, None, None, **extras, problem=f"{where}: unknown label {label!r:.40}; expected real or fake")
    return Item(rid, (root / image).resolve(), canonical, **extras)


# ---- the image as sent -------------------------------------------------------------------------


@dataclass(frozen=True)
class SentImage:
    original_size: tuple[int, int]
    """``(width, height)`` of the upright original: the frame of the written boxes."""
    sent_size: tuple[int, int]
    """``(width, height)`` of the image in the request: the size the grounder's processor keeps."""
    data_url: str


def kept_size(size: tuple[int, int], codec: BoxCodec) -> tuple[int, int]:
    """The ``(width, height)`` the grounder's processor resizes an image of ``size`` to (Qwen's smart
    resize); an image already of that size is kept as it is, so the grounder's frame is the sent one."""
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    h, w = smart_resize(size[1], size[0], factor=codec.patch_size * codec.merge_size,
                        min_pixels=codec.min_pixels, max_pixels=codec.max_pixels)
    return w, h


def prepare_image(path: Path, codec: BoxCodec, max_pixels: int = DEFAULT_MAX_PIXELS) -> SentImage:
    """Decode through :func:`zoomin.images.load_rgb` (raises ImageProblem), resize to the kept size
    with the processor's bicubic filter, and encode as a lossless PNG data URL (a lossy re-encode
    would add compression traces to images whose traces are the subject)."""
    image = load_rgb(path, max_pixels)
    original = image.size
    size = kept_size(original, codec)
    if size != original:
        image = image.resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return SentImage(original, size, url)
