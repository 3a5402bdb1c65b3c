"""Decode each completion once per batch, however many terms read it.

TRL calls every registered reward function in turn on one batch, handing each the *same* objects:
one ``completions`` list and one list per dataset column. Most terms need the same decoded view of
a row: format, boxes and verdict all parse the locate answer; ``box_iou``/``box_f1`` decode the same
predicted boxes; the zoom parts decode the same region boxes and crop windows and find the same
"Region i" citations. So each such view is computed by the first term that asks and kept, for the
last batch only, in :data:`MEMO`; the other terms of that batch read it.

A view is reused only while its inputs are *the very same objects* (compared element by element by
identity, the way TRL passes them), and under the same protocol fingerprint, so a new batch, a
rebuilt column or a protocol edited between batches always recomputes. Values are never compared
by equality: ``[1, 1] == [True, True]``, yet the terms read the two differently. Rows are taken as
read-only while a batch is scored (TRL never edits them), and memoised views are shared between
terms: treat them as read-only too. Only the last batch's views are held, so memory is bounded by
one batch (which TRL holds anyway).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from rewards._columns import as_numbers4, as_size, decode_box, valid_boxes
from rewards._text import completion_text
from zoomin.boxes import Box
from zoomin.protocol import Parsed, ProtocolConfig, Stage

T = TypeVar("T")

MAX_VIEWS = 64
"""Distinct views kept at once (terms x stages x protocols of one run are a handful); past it the
memo starts afresh, so a protocol edited every batch cannot grow it."""


def fingerprint(protocol: ProtocolConfig) -> tuple:
    """Everything :meth:`ProtocolConfig.parse` and :meth:`~ProtocolConfig.cited_regions` depend on."""
    return (
        type(protocol),
        protocol.think_tag,
        protocol.boxes_tag,
        protocol.verdict_tag,
        protocol.real_word,
        protocol.fake_word,
        tuple(protocol.real_aliases),
        tuple(protocol.fake_aliases),
        protocol.max_boxes,
        protocol.region_format,
    )


class BatchMemo:
    """Views of the last batch, each under a key, valid while its inputs are the same objects."""

    def __init__(self) -> None:
        self._views: dict[Hashable, tuple[tuple[list, ...], object]] = {}

    def get(self, key: Hashable, inputs: tuple[Sequence, ...], compute: Callable[[], T]) -> T:
        """The view ``key`` of ``inputs``, from the memo when the same objects made it, else ``compute()``."""
        held = self._views.get(key)
        if held is not None and _same(held[0], inputs):
            return held[1]  # type: ignore[return-value]
        value = compute()
        if len(self._views) >= MAX_VIEWS:
            self._views.clear()
        # Shallow copies: they keep the row objects alive (so identities cannot be reused) and a list
        # refilled in place with new rows no longer matches.
        self._views[key] = (tuple(list(s) for s in inputs), value)
        return value

    def clear(self) -> None:
        self._views.clear()


def _same(held: tuple[list, ...], inputs: tuple[Sequence, ...]) -> bool:
    return len(held) == len(inputs) and all(
        len(a) == len(b) and all(map(operator.is_, a, b)) for a, b in zip(held, inputs)
    )


MEMO = BatchMemo()
"""The one memo of this process: terms of a batch share it (each training process has its own)."""


def clear_cache() -> None:
    """Forget every memoised view (benchmarks and tests start cold with it)."""
    MEMO.clear()


# ---- the views -------------------------------------------------------------------------------------
# Each is a plain function of column values; Rows (rewards._term) memoises them per batch.

Frame = tuple[tuple[float, float], tuple[float, float]] | None
"""A row's usable ``(image_size, coord_frame)``, or None when either is unusable."""

Region = tuple[Box | None, list[float] | None]
"""One shown region: its box decoded to original pixels (None if not a usable box) and its crop
window's four numbers (None if missing or junk)."""


def parse_answers(protocol: ProtocolConfig, completions: Sequence[object], stage: Stage) -> list[Parsed]:
    """Each completion's answer text parsed for ``stage``."""
    parse = protocol.parse
    return [parse(completion_text(c), stage) for c in completions]


def frames(sizes: Sequence[object], coord_frames: Sequence[object]) -> list[Frame]:
    """Each row's usable image size and coordinate frame (see :data:`Frame`)."""
    out: list[Frame] = []
    for size, frame in zip(sizes, coord_frames):
        size, frame = as_size(size), as_size(frame)
        out.append(None if size is None or frame is None else (size, frame))
    return out


def decoded_boxes(answers: Sequence[Parsed], row_frames: Sequence[Frame]) -> list[list[Box | None] | None]:
    """Each answer's boxes decoded to original pixels (None = not a usable box); None for a row with
    no parsed boxes or no usable frame."""
    out: list[list[Box | None] | None] = []
    for answer, frame in zip(answers, row_frames):
        if answer.boxes is None or frame is None:
            out.append(None)
        else:
            size, coords = frame
            out.append([decode_box(b, size, coords) for b in answer.boxes])
    return out


def annotations(boxes: Sequence[object]) -> list[list[Box]]:
    """Each row's usable annotated boxes."""
    return [valid_boxes(b) for b in boxes]


def shown_regions(
    region_boxes: Sequence[object], crop_windows: Sequence[object], row_frames: Sequence[Frame]
) -> list[list[Region] | None]:
    """Each row's shown regions in order (see :data:`Region`); None for a row with no usable frame.

    A ``region_boxes``/``crop_windows`` entry that is not a list counts as no regions; a region
    without a window at its position gets window None.
    """
    out: list[list[Region] | None] = []
    for regions, windows, frame in zip(region_boxes, crop_windows, row_frames):
        if frame is None:
            out.append(None)
            continue
        regions, windows = _listed(regions), _listed(windows)
        size, coords = frame
        row: list[Region] = []
        for i, value in enumerate(regions):
            numbers = as_numbers4(value)
            box = decode_box(numbers, size, coords) if numbers is not None else None
            row.append((box, as_numbers4(windows[i]) if i < len(windows) else None))
        out.append(row)
    return out


def region_counts(region_boxes: Sequence[object]) -> list[int]:
    """How many regions each row showed."""
    return [len(_listed(r)) for r in region_boxes]


def citations(protocol: ProtocolConfig, answers: Sequence[Parsed]) -> list[set[int]]:
    """The region numbers each answer's ``<think>`` cites."""
    cited = protocol.cited_regions
    return [cited(a.think) for a in answers]


def _listed(value: object) -> list:
    """A ``region_boxes``/``crop_windows`` entry as a list (junk counts as no regions)."""
    return value if isinstance(value, list) else list(value) if isinstance(value, tuple) else []
