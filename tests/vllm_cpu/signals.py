"""A reward that always varies between completions, so that a step of a random-weight model has
non-zero advantages and really changes the weights (the project's terms give a random model 0)."""

from __future__ import annotations


def shorter(completions: list, **_: object) -> list[float]:
    """Minus the completion's length in characters, over 100."""
    return [-len(c[-1]["content"] if isinstance(c, list) else c) / 100 for c in completions]
