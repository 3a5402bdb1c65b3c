"""Format rewards: does the answer follow the stage's output grammar?

``strict`` (registry ``format_locate``/``format_examine``) is 1.0 exactly when
:meth:`ProtocolConfig.parse` calls the answer strict: every tag of the stage once, in order, valid
values, nothing but whitespace outside the tags, no other stage's tag. Otherwise 0.0.

``soft`` (``format_locate_soft``/``format_examine_soft``) gives partial credit so early training has
a gradient toward the grammar. The parts, each worth the same:

* one part per tag of the stage (locate: think, boxes, verdict; examine: think, verdict), earned
  when the tag appears exactly once, opened and closed, with a valid value (non-empty think, a
  parseable box list, a known label word);
* one part for the whole answer being strict.

So soft is 1.0 exactly when strict is, and an answer with every tag right but chatter around them
scores 3/4 (locate) or 2/3 (examine).
"""

from __future__ import annotations

from dataclasses import dataclass

from rewards._term import Rows, StagedTerm
from zoomin.protocol import Parsed


@dataclass
class FormatReward(StagedTerm):
    """Grammar of the ``stage`` answer: 1/0 when ``strict``, per-part partial credit otherwise."""

    name: str = "format_examine"
    strict: bool = True

    def score(self, rows: Rows) -> list[float | None]:
        answers = self.answers(rows)
        if self.strict:
            return [1.0 if a.strict else 0.0 for a in answers]
        return [self._soft(t, a) for t, a in zip(self.texts(rows), answers)]

    def _soft(self, text: str | None, answer: Parsed) -> float:
        if text is None:
            return 0.0
        p = self.protocol
        parts = [_once(text, p.think_tag) and bool(answer.think and answer.think.strip())]
        if self.stage == "locate":
            parts.append(_once(text, p.boxes_tag) and answer.boxes is not None)
        parts.append(_once(text, p.verdict_tag) and answer.verdict is not None)
        parts.append(answer.strict)
        return sum(parts) / len(parts)


def _once(text: str, tag: str) -> bool:
    return text.count(f"<{tag}>") == 1 and text.count(f"</{tag}>") == 1
