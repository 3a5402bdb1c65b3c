"""Lineage: every stage appends itself to what the model it started from carried, and the origin is
named as the Hub knows it (an id) or plainly as a local folder, never as the last stage's folder."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from rl.cli import main as cli
from rl.outputs import InfoWriter, origin_of
from zoomin.checkpoint import CheckpointInfo
from zoomin.codecs import BoxCodec
from zoomin.protocol import ProtocolConfig
from zoomin.synth import synthesize

REPO = Path(__file__).resolve().parents[1]


def test_origin_is_a_hub_id_unless_a_plain_local_folder(tmp_path):
    snapshot = tmp_path / "hub" / "models--Qwen--Qwen2.5-VL-7B-Instruct" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    assert origin_of(str(snapshot)) == ("Qwen/Qwen2.5-VL-7B-Instruct", False)
    (tmp_path / "small").mkdir()
    assert origin_of(str(tmp_path / "small")) == (str(tmp_path / "small"), True)
    assert origin_of("Qwen/Qwen2-VL-2B-Instruct") == ("Qwen/Qwen2-VL-2B-Instruct", False)


def test_each_stage_appends_to_the_lineage_it_inherits(tmp_path):
    protocol = ProtocolConfig(codec=BoxCodec("qwen2_vl"))
    origin = tmp_path / "models--Qwen--Qwen2-VL-2B-Instruct" / "snapshots" / "abc"
    origin.mkdir(parents=True)
    first = InfoWriter(protocol, "qwen2_vl", str(origin), "sft", ["--config", "recipes/x/sft.yaml"],
                       "d/train.jsonl", 10)
    first(tmp_path / "sft")
    second = InfoWriter(protocol, "qwen2_vl", str(tmp_path / "sft"), "grpo_locate", [], "d/train.jsonl", 8)
    second(tmp_path / "grpo")
    info = CheckpointInfo.load(tmp_path / "grpo")
    assert (info.base_model, info.base_model_local) == ("Qwen/Qwen2-VL-2B-Instruct", False)
    assert [(s.stage, s.recipe, s.records) for s in info.stages] == [("sft", "recipes/x/sft.yaml", 10),
                                                                      ("grpo_locate", None, 8)]
    for stage in info.stages:
        assert datetime.fromisoformat(stage.started) <= datetime.fromisoformat(stage.ended)
    assert CheckpointInfo.load(tmp_path / "sft").stages == info.stages[:1]  # the parent is left as it was


@pytest.mark.slow
def test_warmup_sft_grpo_chain_names_the_origin_and_every_stage(tiny_vlm, tmp_path):
    synthesize(tmp_path / "data", n=12, seed=0, kinds=("checkerboard",), strength=2.5)
    data = str(tmp_path / "data" / "train.jsonl")
    common = ["--train_data", data, "--use_cpu", "true", "--bf16", "false", "--report_to", "none",
              "--save_strategy", "no", "--max_steps", "1", "--per_device_train_batch_size", "4", "--logging_steps", "1"]
    model = str(tiny_vlm())
    stages = [("warmup", "warmup.yaml", model, "warmup", []),
              ("sft", "sft.yaml", "warmup", "sft", ["--max_records", "4"]),
              ("grpo", "grpo_locate.yaml", "sft", "grpo_locate", ["--max_records", "4", "--num_generations", "4",
                                                                  "--max_completion_length", "8",
                                                                  "--eval_data", str(tmp_path / "data" / "test.jsonl"),
                                                                  "--max_eval_records", "4"])]
    for command, recipe, start, out, extra in stages:
        start = start if start == model else str(tmp_path / start)
        assert cli([command, "--config", str(REPO / "recipes" / "tiny" / recipe), "--model_name_or_path", start,
                    "--output_dir", str(tmp_path / out), *common, *extra]) == 0
    info = CheckpointInfo.load(tmp_path / "grpo_locate")
    assert (info.base_model, info.base_model_local) == (model, True)
    assert [(s.stage, Path(s.recipe).name, s.data) for s in info.stages] == [
        ("warmup", "warmup.yaml", data), ("sft", "sft.yaml", data), ("grpo_locate", "grpo_locate.yaml", data)]
    n_train = len((tmp_path / "data" / "train.jsonl").read_text().splitlines())
    assert [s.records for s in info.stages] == [n_train, 4, 4]
