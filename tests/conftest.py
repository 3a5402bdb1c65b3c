"""Shared fixtures: random-weight VLMs of the real architectures, built offline once per session."""

from __future__ import annotations

import importlib.util
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from zoomin.tiny import build_tiny_vlm

# The vLLM tier runs in its own environment (`make test-vllm`); where vLLM is absent it is not collected.
collect_ignore = [] if importlib.util.find_spec("vllm") else ["vllm_cpu"]


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Return `get(family="qwen2_5_vl", size="tiny") -> Path`; each model is built on first use only."""
    built: dict[tuple[str, str], Path] = {}

    def get(family: str = "qwen2_5_vl", size: str = "tiny") -> Path:
        if (family, size) not in built:
            built[family, size] = build_tiny_vlm(family, size, tmp_path_factory.mktemp(f"{family}-{size}"))
        return built[family, size]

    return get


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_bomb_png(path: Path, width: int = 40_000, height: int = 40_000) -> Path:
    """A real PNG header claiming ``width`` x ``height`` RGB pixels, with a tiny IDAT.

    Pillow reads the size from IHDR inside ``Image.open`` and refuses it there when it exceeds
    twice ``Image.MAX_IMAGE_PIXELS`` (``DecompressionBombError``); it warns between once and twice.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + _chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="session")
def bomb_png() -> Callable[..., Path]:
    """``bomb_png(path, width=40_000, height=40_000)`` writes a PNG whose header claims that many pixels."""
    return write_bomb_png


@pytest.fixture(scope="session")
def app_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """The web app's checkpoint (tests/webapp.py): the demo-size model after a short overfitting SFT,
    evaluated and exported with examples, evidence pictures and a Space; built once per session."""
    from webapp import build_app_checkpoint

    return build_app_checkpoint(tmp_path_factory.mktemp("app"))
