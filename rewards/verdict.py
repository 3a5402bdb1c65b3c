"""Verdict reward: is the answer's real/fake verdict the row's label?"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rewards._columns import as_label
from rewards._term import Rows, StagedTerm, check_flag


@dataclass
class VerdictReward(StagedTerm):
    """``class_weights[label]`` (1.0 by default) when the verdict equals the label, else 0.0.

    The verdict goes through ``protocol.canonical_label``, so label-word aliases ("generated",
    "authentic", any case) count. A missing or unknown verdict scores 0.0; a row whose label is not
    "real"/"fake" scores None. ``stage="locate"`` scores the preliminary verdict of query 1 (the
    paper found rewarding it hurts, so it is not in the default locate set). Class weights counter
    an unbalanced data set: ``class_weights={"fake": 1.0, "real": 2.0}`` pays twice as much for a
    correct "real"; the range is then [0, max weight]. Guessing the majority class is the obvious
    exploit; weights and a balanced data set are the guards.

    ``strict`` (default): an answer that is not exactly the stage's grammar scores 0.0, whatever
    verdict a lenient reading finds in it. Without it the first of repeated verdict tags counts, and
    a policy drifts to answers of repeated ``</think><verdict>fake`` pieces that lose only the format
    term's weight (docs/rewards.md, "Strict parses").
    """

    name: str = "verdict"
    class_weights: dict[str, float] | None = None
    strict: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_flag(self.name, "strict", self.strict)
        weights = self.class_weights or {}
        unknown = sorted(set(weights) - {"real", "fake"})
        if unknown:
            raise ValueError(f"reward {self.name!r}: class_weights keys must be 'real'/'fake', got {unknown}")
        for label, w in weights.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                raise ValueError(f"reward {self.name!r}: class weight for {label!r} must be a number >= 0, got {w!r}")

    def score(self, rows: Rows) -> list[float | None]:
        weights = {"real": 1.0, "fake": 1.0, **(self.class_weights or {})}
        out: list[float | None] = []
        for answer, label in zip(self.answers(rows), rows.column("label")):
            label = as_label(label)
            if label is None:
                out.append(None)
            elif self.strict and not answer.strict:
                out.append(0.0)
            else:
                out.append(float(weights[label]) if answer.verdict == label else 0.0)
        return out
