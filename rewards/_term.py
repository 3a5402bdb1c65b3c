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

from rewards._columns import finite, require
from rewards._parse import parse_all
from rewards._text import completion_text
from zoomin.protocol import Parsed, ProtocolConfig, Stage

Source = Literal["auto", "completions", "locate_completions"]
"""Where a term reads its answer text. ``auto``: a term that parses the *locate* answer reads the
``locate_completions`` column when the batch has one (the joint stage, whose completions are the
examine answers) and ``completions`` otherwise; a term that parses the examine answer always reads
``completions``."""

STAGES = ("locate", "examine")
SOURCES = ("auto", "completions", "locate_completions")


class Rows:
    """One batch as TRL hands it to a reward: the completions and every dataset column."""

    def __init__(self, completions: Sequence[object], columns: Mapping[str, object], term: str) -> None:
        if isinstance(completions, (str, bytes)) or not isinstance(completions, Sequence):
            raise TypeError(f"reward {term!r}: completions must be a list, got {type(completions).__name__}")
        self.n = len(completions)
        self.term = term
        self._columns = {**columns, "completions": completions}
        self._texts: dict[str, list[str | None]] = {}

    def has(self, name: str) -> bool:
        return name in self._columns

    def column(self, name: str) -> list:
        """Column ``name``, one value per completion; a missing column raises ValueError."""
        return require(self._columns, name, self.n, self.term)

    def texts(self, source: str) -> list[str | None]:
        """The answer texts of ``completions`` or ``locate_completions``."""
        if source not in self._texts:
            self._texts[source] = [completion_text(c) for c in self.column(source)]
        return self._texts[source]

    def source_for(self, stage: Stage, source: Source) -> str:
        if source != "auto":
            return source
        return "locate_completions" if stage == "locate" and self.has("locate_completions") else "completions"

    def answers(self, protocol: ProtocolConfig, stage: Stage, source: Source = "auto") -> list[Parsed]:
        """Each answer parsed for ``stage`` (memoised across the terms of a batch)."""
        return parse_all(protocol, self.texts(self.source_for(stage, source)), stage)


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
