"""Shared fixtures: random-weight VLMs of the real architectures, built offline once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from zoomin.tiny import build_tiny_vlm


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Return `get(family="qwen2_5_vl", size="tiny") -> Path`; each model is built on first use only."""
    built: dict[tuple[str, str], Path] = {}

    def get(family: str = "qwen2_5_vl", size: str = "tiny") -> Path:
        if (family, size) not in built:
            built[family, size] = build_tiny_vlm(family, size, tmp_path_factory.mktemp(f"{family}-{size}"))
        return built[family, size]

    return get
