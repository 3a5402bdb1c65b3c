"""What every reward term shares: the TRL calling convention, column access and the output guard.

A term is a picklable dataclass (so it survives DeepSpeed/accelerate process spawning) called as
``term(completions, **columns) -> list[float | None]``, exactly as TRL's ``GRPOTrainer`` calls a
sync reward function; unknown keyword arguments (``prompts``, ``completion_ids``, ``trainer_state``,
``log_extra``, ``log_metric``, extra dataset columns) are accepted and ignored. Its ``__name__`` is
its registry name, which TRL uses to log ``rewards/<__name__>/mean``. Every value a term returns
passes :func:`~rewards._columns.finite`, so no NaN or inf can reach the advantage computation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from rewards import _decode
from rewards._columns import finite, require
from rewards._decode import MEMO, Frame, Region, fingerprint
from rewards._text import completion_text
from zoomin.boxes import Box
from zoomin.protocol import Parsed, ProtocolConfig, Stage

Source = Literal["auto", "completions", "locate_completions"]
"""Where a term reads its answer text. ``auto``: a term that parses the *locate* answer reads the
``locate_completions`` column when the batch has one (the joint stage, whose completions are the
examine answers) and ``completions`` otherwise; a term that parses the examine answer always reads
``completions``."""

STAGES = ("locate", "examine")
SOURCES = ("auto", "completions", "locate_completions")


class Rows:
    """One batch as TRL hands it to a reward: the completions and every dataset column.

    The decoded views (parsed answers, decoded boxes, regions, citations) come from
    :data:`rewards._decode.MEMO`, so the terms of one batch decode each completion once.
    """

    def __init__(self, completions: Sequence[object], columns: Mapping[str, object], term: str) -> None:
        if isinstance(completions, (str, bytes)) or not isinstance(completions, Sequence):
            raise TypeError(f"reward {term!r}: completions must be a list, got {type(completions).__name__}")
        self.n = len(completions)
        self.term = term
        self._columns = {**columns, "completions": completions}

    def has(self, name: str) -> bool:
        return name in self._columns

    def column(self, name: str) -> list:
        """Column ``name``, one value per completion; a missing column raises ValueError."""
        return require(self._columns, name, self.n, self.term)

    def texts(self, source: str) -> list[str | None]:
        """The answer texts of ``completions`` or ``locate_completions``."""
        return [completion_text(c) for c in self.column(source)]

    def source_for(self, stage: Stage, source: Source) -> str:
        if source != "auto":
            return source
        return "locate_completions" if stage == "locate" and self.has("locate_completions") else "completions"

    def answers(self, protocol: ProtocolConfig, stage: Stage, source: Source = "auto") -> list[Parsed]:
        """Each answer parsed for ``stage``."""
        name = self.source_for(stage, source)
        column = self.column(name)
        return MEMO.get(("answers", name, stage, fingerprint(protocol)), (column,),
                        lambda: _decode.parse_answers(protocol, column, stage))

    def frames(self) -> list[Frame]:
        """Each row's usable ``(image_size, coord_frame)``, or None."""
        sizes, coords = self.column("image_size"), self.column("coord_frame")
        return MEMO.get(("frames",), (sizes, coords), lambda: _decode.frames(sizes, coords))

    def decoded_boxes(self, protocol: ProtocolConfig, source: Source = "auto") -> list[list[Box | None] | None]:
        """Each locate answer's boxes in original pixels (see :func:`rewards._decode.decoded_boxes`)."""
        column = self.column(self.source_for("locate", source))
        sizes, coords = self.column("image_size"), self.column("coord_frame")
        return MEMO.get(("decoded_boxes", fingerprint(protocol)), (column, sizes, coords),
                        lambda: _decode.decoded_boxes(self.answers(protocol, "locate", source), self.frames()))

    def annotations(self) -> list[list[Box]]:
        """Each row's usable annotated ``boxes``."""
        boxes = self.column("boxes")
        return MEMO.get(("annotations",), (boxes,), lambda: _decode.annotations(boxes))

    def regions(self) -> list[list[Region] | None]:
        """Each row's shown regions, decoded (see :func:`rewards._decode.shown_regions`)."""
        names = ("region_boxes", "crop_windows", "image_size", "coord_frame")
        columns = tuple(self.column(n) for n in names)
        return MEMO.get(("regions",), columns,
                        lambda: _decode.shown_regions(columns[0], columns[1], self.frames()))

    def region_counts(self) -> list[int]:
        """How many regions each row showed."""
        regions = self.column("region_boxes")
        return MEMO.get(("region_counts",), (regions,), lambda: _decode.region_counts(regions))

    def citations(self, protocol: ProtocolConfig) -> list[set[int]]:
        """The region numbers each examine answer cites."""
        column = self.column("completions")
        return MEMO.get(("citations", fingerprint(protocol)), (column,),
                        lambda: _decode.citations(protocol, self.answers(protocol, "examine", "completions")))


def check_flag(term: str, name: str, value: object) -> None:
    """Reject a flag that is not a bool: a recipe's ``strict: "false"`` would otherwise read as true."""
    if not isinstance(value, bool):
        raise ValueError(f"reward {term!r}: {name} must be true or false, got {value!r}")


def check_stage_source(term: str, stage: object, source: object) -> None:
    """Reject a stage or source a term cannot read, when the term is built rather than mid-training."""
    if stage not in STAGES:
        raise ValueError(f"reward {term!r}: stage must be one of {STAGES}, got {stage!r}")
    if source not in SOURCES:
        raise ValueError(f"reward {term!r}: source must be one of {SOURCES}, got {source!r}")
    if stage == "examine" and source == "locate_completions":
        raise ValueError(f"reward {term!r}: the examine answer is never in locate_completions")


@dataclass
class RewardTerm:
    """Base of every term: subclasses implement :meth:`score` on a whole batch."""

    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    name: str = "reward"
    """The registry name; becomes ``__name__``, under which TRL logs the term."""

    def __post_init__(self) -> None:
        if not isinstance(self.protocol, ProtocolConfig):
            raise TypeError(f"reward {self.name!r}: protocol must be a ProtocolConfig, got {type(self.protocol).__name__}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"reward name must be a non-empty string, got {self.name!r}")
        self.__name__ = self.name

    def __call__(self, completions: Sequence[object], **columns: object) -> list[float | None]:
        rows = Rows(completions, columns, self.name)
        return [finite(v) for v in self.score(rows)]

    def score(self, rows: Rows) -> list[float | None]:
        raise NotImplementedError


@dataclass
class StagedTerm(RewardTerm):
    """A term that reads one stage's answer; ``source`` says which text holds it (see :data:`Source`)."""

    stage: Stage = "examine"
    source: Source = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_stage_source(self.name, self.stage, self.source)

    def answers(self, rows: Rows) -> list[Parsed]:
        return rows.answers(self.protocol, self.stage, self.source)

    def texts(self, rows: Rows) -> list[str | None]:
        return rows.texts(rows.source_for(self.stage, self.source))
