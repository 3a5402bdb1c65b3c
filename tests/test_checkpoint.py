"""zoomin.json is read strictly, and checkpoints appear on disk only once completely written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoProcessor

from zoomin.checkpoint import (
    DEFAULT_GENERATION,
    ZOOMIN_FILE,
    CheckpointError,
    CheckpointInfo,
    StageRecord,
    checkpoint_problems,
    is_complete_checkpoint,
    write_checkpoint_atomically,
)
from zoomin.codecs import BoxCodec
from zoomin.data import load_records
from zoomin.formats import sft_rows
from zoomin.protocol import ProtocolConfig
from zoomin.synth import synthesize


def _info(**kw) -> CheckpointInfo:
    return CheckpointInfo(ProtocolConfig(codec=BoxCodec("qwen2_vl"), real_word="genuine"), **kw)


STAGE = {"stage": "sft", "recipe": "recipes/tiny/sft.yaml", "data": "data/train.jsonl", "records": 960,
         "started": "2026-01-02T03:04:05+00:00", "ended": "2026-01-02T03:11:05+00:00"}


def _fake_checkpoint(folder: Path) -> None:
    """The files a complete checkpoint has (contents are not loaded by these tests)."""
    for name in ("config.json", "tokenizer.json", "processor_config.json"):
        (folder / name).write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    _info().save(folder)


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_round_trip_fills_defaults_and_family(tmp_path):
    info = _info(generation={"examine": {"max_new_tokens": 7}}, base_model="Qwen/Qwen2-VL-2B-Instruct")
    assert info.family == "qwen2_vl"
    assert info.generation == {"locate": DEFAULT_GENERATION["locate"], "examine": {"max_new_tokens": 7, "do_sample": False}}
    info.save(tmp_path)
    stored = json.loads((tmp_path / ZOOMIN_FILE).read_text())
    assert stored["schema_version"] == 2 and set(stored) == {"schema_version", "protocol", "generation", "base_model",
                                                             "base_model_local", "family", "stages"}
    again = CheckpointInfo.load(tmp_path)
    assert again == info
    assert again.protocol.real_word == "genuine" and again.protocol.codec == BoxCodec("qwen2_vl")


def test_lineage_round_trips(tmp_path):
    info = _info(base_model="Qwen/Qwen2.5-VL-7B-Instruct", stages=[STAGE, {**STAGE, "stage": "grpo_locate"}])
    assert [s.stage for s in info.stages] == ["sft", "grpo_locate"] and info.stages[0] == StageRecord(**STAGE)
    info.save(tmp_path)
    assert CheckpointInfo.load(tmp_path) == info


@pytest.mark.parametrize(("base_model", "local"), [("runs/demo/grpo_locate", True), ("/models/qwen", True),
                                                   ("Qwen/Qwen2-VL-2B-Instruct", False), (None, False)])
def test_version_1_files_are_still_read(tmp_path, base_model, local):
    """Version 1 had no lineage; its base_model was whatever the last stage started from."""
    d = {k: v for k, v in _info(base_model=base_model).to_dict().items() if k not in ("base_model_local", "stages")}
    info = CheckpointInfo.load(_write_json(tmp_path, {**d, "schema_version": 1}))
    assert (info.base_model, info.base_model_local, info.stages) == (base_model, local, [])
    assert info.protocol.real_word == "genuine"


def test_default_budgets_are_greedy_and_hold_every_magnifake_mini_answer(tiny_vlm, tmp_path):
    info = CheckpointInfo(ProtocolConfig())
    assert all(settings["do_sample"] is False for settings in info.generation.values())
    synthesize(tmp_path, n=60, seed=0)
    records, _ = load_records(tmp_path / "train.jsonl")
    processor = AutoProcessor.from_pretrained(tiny_vlm())
    protocol = ProtocolConfig(codec=BoxCodec.from_processor("qwen2_5_vl", processor))
    longest = [0, 0]
    for i, example in enumerate(sft_rows(records, protocol)):
        answer = example["completion"][0]["content"][0]["text"]
        longest[i % 2] = max(longest[i % 2], len(processor.tokenizer(answer)["input_ids"]) + 1)  # + <|im_end|>
    assert longest[0] <= info.generation["locate"]["max_new_tokens"]
    assert longest[1] <= info.generation["examine"]["max_new_tokens"]


def _write_json(tmp_path, payload) -> Path:
    (tmp_path / ZOOMIN_FILE).write_text(json.dumps(payload) if not isinstance(payload, str) else payload)
    return tmp_path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(schema_version=3), "schema_version 3"),
        (lambda d: d.pop("schema_version"), "schema_version None"),
        (lambda d: d.update(extra=1), r"unknown keys \['extra'\]"),
        (lambda d: d["protocol"].update(tag="x"), r"unknown protocol keys \['tag'\]"),
        (lambda d: d.pop("protocol"), "no 'protocol'"),
        (lambda d: d.update(family="qwen3_vl"), "disagrees with the protocol's box codec"),
        (lambda d: d.update(family="llava"), "unknown model family"),
        (lambda d: d.update(generation={"judge": {}}), "generation must map"),
        (lambda d: d.update(generation={"locate": 5}), r"generation\['locate'\] must be a dict"),
        (lambda d: d.update(stages={"sft": 1}), "stages must be a list"),
        (lambda d: d.update(stages=[{**STAGE, "epochs": 2}]), r"unknown keys \['epochs'\]"),
        (lambda d: d.update(stages=[{k: v for k, v in STAGE.items() if k != "data"}]), r"missing keys \['data'\]"),
        (lambda d: d.update(stages=[{**STAGE, "records": -1}]), "'records' must be a count"),
        (lambda d: d.update(stages=[{**STAGE, "ended": "yesterday"}]), "'ended' is not an ISO 8601 time"),
        (lambda d: d.update(base_model_local="yes"), "base_model_local must be true or false"),
        (lambda d: d.update(schema_version=1), r"unknown keys \['base_model_local', 'stages'\]"),
    ],
)
def test_bad_files_fail_loudly(tmp_path, change, message):
    d = _info().to_dict()
    change(d)
    with pytest.raises(CheckpointError, match=message):
        CheckpointInfo.load(_write_json(tmp_path, d))


def test_missing_file_says_not_a_zoomin_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="is not a ZoomIn checkpoint: it has no zoomin.json"):
        CheckpointInfo.load(tmp_path)
    with pytest.raises(CheckpointError, match="checkpoint folder not found"):
        CheckpointInfo.load(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        CheckpointInfo.load(_write_json(tmp_path, "{oops"))


def test_checkpoint_problems_names_what_is_missing(tmp_path):
    assert set(checkpoint_problems(tmp_path)) >= {"no config.json", "no safetensors weights", "no tokenizer files"}
    _fake_checkpoint(tmp_path)
    assert checkpoint_problems(tmp_path) == [] and is_complete_checkpoint(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    assert any("safetensors only" in p for p in checkpoint_problems(tmp_path))
    (tmp_path / "pytorch_model.bin").unlink()
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-00002.safetensors"}}))
    assert checkpoint_problems(tmp_path) == ["weight shard model-00002.safetensors listed in the index is missing"]


def test_atomic_write_publishes_a_complete_checkpoint(tmp_path):
    out = write_checkpoint_atomically(tmp_path / "ckpt", _fake_checkpoint)
    assert out == (tmp_path / "ckpt").absolute() and is_complete_checkpoint(out)
    assert _siblings(out) == ["ckpt"]


def test_interrupted_writer_leaves_nothing(tmp_path):
    def writer(folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of saving weights

    with pytest.raises(KeyboardInterrupt):
        write_checkpoint_atomically(tmp_path / "ckpt", writer)
    assert list(tmp_path.iterdir()) == []


def test_incomplete_result_is_not_published(tmp_path):
    def writer(folder: Path) -> None:
        _fake_checkpoint(folder)
        (folder / "processor_config.json").unlink()

    with pytest.raises(CheckpointError, match="incomplete: no processor files"):
        write_checkpoint_atomically(tmp_path / "ckpt", writer)
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_needs_overwrite_and_survives_a_failed_one(tmp_path):
    out = tmp_path / "ckpt"
    out.mkdir()
    write_checkpoint_atomically(out, _fake_checkpoint)  # an empty folder may be filled
    with pytest.raises(FileExistsError, match="not empty"):
        write_checkpoint_atomically(out, _fake_checkpoint)

    def failing(folder: Path) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_checkpoint_atomically(out, failing, overwrite=True)
    assert is_complete_checkpoint(out) and _siblings(out) == ["ckpt"]

    def marked(folder: Path) -> None:
        _fake_checkpoint(folder)
        (folder / "README.md").write_text("new")

    write_checkpoint_atomically(out, marked, overwrite=True)
    assert (out / "README.md").read_text() == "new" and _siblings(out) == ["ckpt"]
