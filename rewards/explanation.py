"""Explanation rewards: n-gram overlap of the answer's ``<think>`` with the reference ``explanation``.

``bleu2`` is the paper's term; ``rouge_l`` is the other metric it reports. Both come from
``torchmetrics.functional.text`` (imported on first call, so terms that don't need torchmetrics don't
pay its multi-second import), one call per completion, because torchmetrics' batched BLEU is a corpus
score and a reward needs one number per answer.

* BLEU-2: ``sacre_bleu_score(n_gram=2, tokenize="13a", lowercase=True)``: uniform weights over
  unigram and bigram precision times the brevity penalty, punctuation split off words, case folded.
  Unsmoothed, so an answer with no bigram in common with the reference scores 0.
* ROUGE-L: the F-measure of ``rouge_score(rouge_keys="rougeL")`` on lowercased words, with a
  Unicode-aware normaliser (torchmetrics' default keeps only ``[a-z0-9]``, which would score every
  non-English explanation 0). No stemmer, so nltk and its data downloads are never needed.

Rules: a row with no usable reference -> None (the prompt's, so the same for a whole group); with
``strict`` (the default) an answer that is not exactly the stage's grammar -> 0.0; no or empty
``<think>`` -> 0.0; a ``<think>`` over ``max_chars`` characters -> 0.0 (far beyond any reference; also
bounds ROUGE-L's quadratic LCS).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rewards._term import Rows, StagedTerm, check_flag

_NON_WORD = re.compile(r"[\W_]+")


@dataclass
class _OverlapTerm(StagedTerm):
    max_chars: int = 8192
    strict: bool = True
    """Score 0.0 for an answer that is not exactly the stage's grammar: a lenient parse reads the
    first of repeated ``<think>`` tags, which pays explanation text wrapped in a broken answer."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_flag(self.name, "strict", self.strict)
        if self.max_chars < 1:
            raise ValueError(f"reward {self.name!r}: max_chars must be >= 1, got {self.max_chars}")

    def score(self, rows: Rows) -> list[float | None]:
        out: list[float | None] = []
        for answer, reference in zip(self.answers(rows), rows.column("explanation")):
            think = answer.think
            if not isinstance(reference, str) or not reference.strip():
                out.append(None)
            elif (self.strict and not answer.strict) or not think or not think.strip() or len(think) > self.max_chars:
                out.append(0.0)
            else:
                out.append(self.overlap(think, reference))
        return out

    def overlap(self, text: str, reference: str) -> float:
        raise NotImplementedError


@dataclass
class Bleu2(_OverlapTerm):
    """Sentence BLEU-2 of ``<think>`` against the reference explanation. Range [0, 1].

    Gameable by copying frequent reference phrasing regardless of the image (generic boilerplate
    collects unigram and bigram hits); the brevity penalty stops very short answers, and the verdict
    and zoom terms have to carry the grounding.
    """

    name: str = "bleu2"

    def overlap(self, text: str, reference: str) -> float:
        from torchmetrics.functional.text import sacre_bleu_score

        return float(sacre_bleu_score([text], [[reference]], n_gram=2, tokenize="13a", lowercase=True))


@dataclass
class RougeL(_OverlapTerm):
    """ROUGE-L F-measure (longest common word subsequence) of ``<think>`` against the reference. Range [0, 1].

    Rewards reproducing the reference's word order; the F-measure's precision half penalises
    padding, the ``max_chars`` cap bounds it. Same boilerplate exploit as ``bleu2``.
    """

    name: str = "rouge_l"

    def overlap(self, text: str, reference: str) -> float:
        from torchmetrics.functional.text import rouge_score

        return float(rouge_score(text, reference, rouge_keys="rougeL", normalizer=_normalize)["rougeL_fmeasure"])


def _normalize(text: str) -> str:
    return _NON_WORD.sub(" ", text.lower())
