"""The exported model card, read back by huggingface_hub as the Hub reads it: base model, eval
results (model-index), datasets, lineage, evidence pictures; and the Space's card beside it."""

from __future__ import annotations

import json
import re

import pytest
from huggingface_hub import ModelCard, SpaceCard
from PIL import Image

from rl.card import Evaluation, model_card
from zoomin.checkpoint import CheckpointInfo
from zoomin.protocol import ProtocolConfig
from zoomin.viz import MIN_WIDTH

STAGE = {"recipe": None, "data": "data/train.jsonl", "records": 960, "started": "2026-01-02T03:04:05+00:00",
         "ended": "2026-01-02T03:14:05+00:00"}
EXPECTED_TYPES = {"Accuracy": "accuracy", "F1 (fake)": "f1", "AUROC (P(fake))": "roc_auc",
                  "IoU (located vs annotated boxes)": "iou", "BLEU-2 (explanation)": "bleu",
                  "ROUGE-L (explanation)": "rouge", "Preliminary accuracy (query 1)": "accuracy"}
KEYS = {"Accuracy": "accuracy", "F1 (fake)": "f1", "AUROC (P(fake))": "auroc",
        "IoU (located vs annotated boxes)": "iou", "BLEU-2 (explanation)": "bleu2",
        "ROUGE-L (explanation)": "rougeL", "Preliminary accuracy (query 1)": "preliminary_accuracy"}


@pytest.mark.slow
def test_exported_card_parses_back_with_every_field(app_checkpoint):
    folder = app_checkpoint.checkpoint
    card = ModelCard.load(folder / "README.md")
    metrics = json.loads(app_checkpoint.eval_json.read_text())["metrics"]["clean"]

    assert card.data.base_model is None  # trained from a local folder: said in the text, no path in metadata
    assert "Trained from a local model folder" in card.text and "names no `base_model`" in card.text
    assert card.data.license == "apache-2.0" and card.data.pipeline_tag == "image-text-to-text"
    assert card.data.datasets == ["MagniFake-mini"] and card.data.library_name == "transformers"
    results = card.data.eval_results
    assert {r.metric_name for r in results} == {n for n, k in KEYS.items() if metrics[k] is not None}
    for result in results:
        assert (result.dataset_name, result.dataset_split, result.dataset_args) == (
            "MagniFake-mini", "test", {"num_samples": metrics["n"]})
        assert result.metric_type == EXPECTED_TYPES[result.metric_name]
        assert result.metric_value == pytest.approx(metrics[KEYS[result.metric_name]], abs=5e-5)
        assert result.task_type == "image-classification"

    info = CheckpointInfo.load(folder)
    assert [s.stage for s in info.stages] == ["sft"] and info.base_model_local
    assert re.search(r"^\| 1 \| sft \| - \| `[^`]*few\.jsonl` \| 2 \| ", card.text, re.M)
    pictures = re.findall(r"!\[[^\]]*\]\((evidence/[^)]+\.png)\)", card.text)
    assert len(pictures) == 2 == len(list((folder / "examples").iterdir()))
    for picture in pictures:
        with Image.open(folder / picture) as image:
            assert image.width >= MIN_WIDTH  # the --save-viz picture: enlarged image, crops, caption

    space = SpaceCard.load(folder / "space" / "README.md")
    assert (space.data.sdk, space.data.app_file) == ("gradio", "app.py")
    assert (folder / "space" / space.data.app_file).is_file()


def _info(**kw) -> CheckpointInfo:
    return CheckpointInfo(ProtocolConfig(), **kw)


def test_hub_origin_is_the_base_model_with_its_relation():
    info = _info(base_model="Qwen/Qwen2.5-VL-7B-Instruct",
                 stages=[{**STAGE, "stage": s} for s in ("warmup", "sft", "grpo_locate", "grpo_examine")])
    metrics = {"n": 240, "accuracy": 0.9, "f1": 0.91, "auroc": None, "iou": 0.3, "bleu2": 0.2, "rougeL": 0.3,
               "preliminary_accuracy": 0.8}
    card = ModelCard(str(model_card(info, model_name="zoomin-7b", evaluation=Evaluation("org/data", "test", metrics),
                                    datasets=["org/data"])))
    assert card.data.base_model == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert card.data.to_dict()["base_model_relation"] == "finetune"
    assert "Fine-tuned from [`Qwen/Qwen2.5-VL-7B-Instruct`]" in card.text
    assert card.data.model_name == "zoomin-7b" and {"sft", "grpo"} <= set(card.data.tags)
    assert "roc_auc" not in {r.metric_type for r in card.data.eval_results}  # undefined metrics are left out
    assert "AUROC" not in card.text
    rows = re.findall(r"^\| (\d) \| (\w+) \|", card.text, re.M)
    assert rows == [("1", "warmup"), ("2", "sft"), ("3", "grpo_locate"), ("4", "grpo_examine")]


def test_unrecorded_origin_is_said_plainly():
    card = ModelCard(str(model_card(_info(), model_name="x")))
    assert card.data.base_model is None and "not recorded" in card.text and "model-index" not in str(card)


def test_a_wrong_eval_file_is_a_clear_error(tmp_path):
    (tmp_path / "eval.json").write_text('{"metrics": {"jpeg_q50": {}}}')
    with pytest.raises(ValueError, match=r"eval\.json is not a `zoomin eval --out` result with 'clean' metrics"):
        Evaluation.from_eval_json(tmp_path / "eval.json", "d", "test")
    (tmp_path / "eval.json").write_text("{oops")
    with pytest.raises(ValueError, match="not valid JSON"):
        Evaluation.from_eval_json(tmp_path / "eval.json", "d", "test")
