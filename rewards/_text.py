"""Turning whatever TRL hands a reward into the answer text, without ever raising.

TRL passes completions either as plain strings or in conversational form, a list of messages
``[{"role": "assistant", "content": ...}]`` whose content is a string or a list of parts
``{"type": "text", "text": ...}``. A multi-turn rollout may hand over several messages; the answer
being scored is the *last* assistant message (earlier turns of a joint trajectory come as their own
column, ``locate_completions``). Anything unrecognisable becomes None, which every term scores as an
answer with no tags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def completion_text(completion: object) -> str | None:
    """The answer text of one completion, or None when it carries no text at all."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return _content_text(completion.get("content"))
    if isinstance(completion, Sequence) and not isinstance(completion, (bytes, bytearray)):
        messages = [m for m in completion if isinstance(m, Mapping)]
        assistant = [m for m in messages if m.get("role") == "assistant"]
        chosen = assistant or messages
        return _content_text(chosen[-1].get("content")) if chosen else None
    return None


def _content_text(content: object) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        texts = [_part_text(part) for part in content]
        texts = [t for t in texts if t is not None]
        return "".join(texts) if texts else None
    return None


def _part_text(part: object) -> str | None:
    if isinstance(part, str):
        return part
    if isinstance(part, Mapping) and part.get("type", "text") == "text" and isinstance(part.get("text"), str):
        return part["text"]
    return None
