"""BLEU-2 and ROUGE-L of the examine explanation, checked against values computed by hand."""

from __future__ import annotations

import math
import sys

import pytest

from rewards import get_reward


def think(text: str) -> str:
    return f"<think>{text}</think>\n<verdict>fake</verdict>"


def run(name: str, pairs: list[tuple[str, str]], **params) -> list:
    term = get_reward(name, **params)
    return term([think(p) for p, _ in pairs], explanation=[r for _, r in pairs])


def test_bleu2_by_hand():
    pairs = [
        # Unigrams: the x2, cat, on, mat match of 6 -> 5/6. Bigrams: "the cat", "on the", "the mat" of 5 -> 3/5.
        # Same length, no brevity penalty: sqrt(5/6 * 3/5) = sqrt(1/2).
        ("the cat sat on the mat", "the cat is on the mat"),
        # Case folded and "." split off (13a): 7 tokens each; unigrams 6/7; bigrams "the cat", "on the",
        # "the mat", "mat ." of 6 -> 4/6; sqrt(6/7 * 4/6) = sqrt(4/7).
        ("The cat sat on the mat.", "the cat is on the mat."),
        # Precisions 2/2 and 1/1, but 2 words against 6: brevity penalty exp(1 - 6/2) = exp(-2).
        ("the cat", "the cat is on the mat"),
        # No bigram in common: BLEU-2 is 0 (unsmoothed).
        ("mat the", "the cat"),
    ]
    assert run("bleu2", pairs) == pytest.approx([math.sqrt(1 / 2), math.sqrt(4 / 7), math.exp(-2), 0.0], abs=1e-6)


def test_rouge_l_by_hand():
    pairs = [
        # LCS "the cat on the mat" = 5 of 6 and 6 words: P = R = F = 5/6.
        ("the cat sat on the mat", "the cat is on the mat"),
        # Punctuation dropped, lowercased: "region 1 the cat sat" (5) vs "the cat sat" (3); LCS 3:
        # P = 3/5, R = 1, F = 2 * 0.6 / 1.6 = 0.75.
        ("Region 1: the Cat, sat!", "the cat sat"),
        # Non-English words survive normalisation (torchmetrics' default would strip "était" to "tait"):
        # LCS "le chat était" = 3 of 4 both ways -> 0.75.
        ("le chat était là", "le chat était ici"),
    ]
    assert run("rouge_l", pairs) == pytest.approx([5 / 6, 0.75, 0.75], abs=1e-6)


@pytest.mark.parametrize("name", ["bleu2", "rouge_l"])
def test_missing_empty_or_overlong_explanations(name):
    term = get_reward(name, max_chars=50)
    completions = ["<verdict>fake</verdict>", think("   "), think("the cat " * 30), None, think("the cat")]
    refs = ["the cat", "the cat", "the cat", "the cat", "   "]
    assert term(completions, explanation=refs) == [0.0, 0.0, 0.0, 0.0, None]
    assert term([think("the cat")], explanation=[None]) == [None]
    with pytest.raises(ValueError, match="max_chars"):
        get_reward(name, max_chars=0)


def test_rouge_needs_no_nltk(monkeypatch):
    # With nltk unimportable (as on an offline machine without its data), ROUGE-L still works.
    monkeypatch.setitem(sys.modules, "nltk", None)
    assert run("rouge_l", [("the cat sat", "the cat sat")]) == [pytest.approx(1.0)]


def test_stage_locate_scores_the_preliminary_explanation():
    term = get_reward("rouge_l", stage="locate", name="rouge_l_locate")
    answer = "<think>the cat sat</think><boxes>[]</boxes><verdict>real</verdict>"
    assert term.__name__ == "rouge_l_locate"
    assert term([answer], explanation=["the cat sat"]) == [pytest.approx(1.0)]
    assert term(["<think>x</think><verdict>real</verdict>"], explanation=["x"],
                locate_completions=[answer]) == [0.0]
