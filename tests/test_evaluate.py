"""Metrics against hand-computed values, the evaluation loop, and `zoomin eval` end to end."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image
from transformers import AutoProcessor

from rl.cli import main
from zoomin.checkpoint import CheckpointInfo
from zoomin.codecs import BoxCodec
from zoomin.data import Record, load_records
from zoomin.detector import Detection
from zoomin.evaluate import downscale, evaluate, format_table, jpeg
from zoomin.metrics import compute_metrics, localisation_iou, text_metrics, verdict_change, verdict_metrics
from zoomin.protocol import ProtocolConfig
from zoomin.synth import synthesize

LABELS = ["fake", "fake", "real", "real"]


def test_verdict_metrics_by_hand():
    # predictions fake, real, real, none (counted wrong, i.e. fake): TP 1, FN 1, TN 1, FP 1
    m = verdict_metrics(LABELS, ["fake", "real", "real", None], [0.9, 0.4, 0.2, 0.6])
    assert m["accuracy"] == 0.5 and m["f1"] == pytest.approx(0.5) and m["no_verdict_rate"] == 0.25
    # fake scores {.9, .4} vs real {.2, .6}: 3 of 4 pairs ordered right
    assert m["auroc"] == pytest.approx(0.75)
    perfect = verdict_metrics(LABELS, ["fake", "fake", "real", "real"], [0.9, 0.8, 0.1, 0.2])
    assert perfect == {"accuracy": 1.0, "f1": 1.0, "auroc": 1.0, "no_verdict_rate": 0.0}
    assert verdict_metrics(["fake", "fake"], ["fake", "real"], [0.9, 0.1])["auroc"] is None


def test_verdict_change_by_hand():
    stats = verdict_change(LABELS, ["real", "real", "real", "fake"], ["fake", "real", "fake", None])
    # 3 images have both verdicts; 2 changed (0: right, 2: wrong)
    assert stats == {"preliminary_accuracy": 0.25, "change_rate": pytest.approx(2 / 3), "change_correct_rate": 0.5}
    assert verdict_change(["real"], ["real"], ["real"])["change_correct_rate"] is None


def test_localisation_iou_by_hand():
    gt = [[0, 0, 10, 10]]
    predicted = [[[0, 0, 10, 10], [0, 0, 5, 10]], [], [[0, 0, 10, 10]], [[0, 0, 1, 1]]]
    annotated = [gt, gt, gt, []]
    # image 0: (1 + 0.5) / 2; image 1: no boxes -> 0; image 2 is real, image 3 has no annotations
    assert localisation_iou(["fake", "fake", "real", "fake"], predicted, annotated) == pytest.approx(0.375)
    assert localisation_iou(["real"], [[]], [gt]) is None


def test_text_metrics_offline():
    assert text_metrics(["the smeared texture in region one"], ["the smeared texture in region one"]) == \
        pytest.approx({"bleu2": 1.0, "rougeL": 1.0})
    assert text_metrics([None], ["a reference"]) == {"bleu2": 0.0, "rougeL": 0.0}
    # ROUGE-L F1: LCS 5 of 6 words each side
    assert text_metrics(["the cat sat on the mat"], ["the cat is on the mat"])["rougeL"] == pytest.approx(5 / 6)


def _detection(verdict, score, prelim, boxes, explanation, size=(100, 100), strict=(True, True)):
    return Detection(verdict, score, prelim, boxes, "", "", None, explanation, [], [], size, *strict)


def test_compute_metrics_combines_everything():
    dets = [
        _detection("fake", 0.9, "real", [[0, 0, 10, 10]], "smeared region", strict=(False, True)),
        _detection("real", 0.3, "real", [], "natural", strict=(True, False)),
    ]
    m = compute_metrics(dets, ["fake", "real"], [[[0, 0, 10, 10]], []], ["smeared region", "natural"])
    assert m["n"] == 2 and m["accuracy"] == 1.0 and m["iou"] == 1.0 and m["bleu2"] == pytest.approx(1.0)
    assert m["change_rate"] == 0.5 and m["change_correct_rate"] == 1.0 and m["preliminary_accuracy"] == 0.5
    assert m["locate_format_error_rate"] == 0.5 and m["examine_format_error_rate"] == 0.5
    with pytest.raises(ValueError, match="one label"):
        compute_metrics(dets, ["fake"], [[]], ["x"])


def test_perturbations():
    image = Image.new("RGB", (101, 60), (10, 200, 30))
    assert downscale(image).size == (50, 30)
    assert jpeg(image).size == image.size and jpeg(image).mode == "RGB"


class _Oracle:
    """A detector stand-in that answers each record's label and its boxes, scaled to the image it gets."""

    def __init__(self, records):
        self.queue = []
        self.records = records

    def detect(self, images, batch_size):
        out = []
        for image in images:
            record = self.records[len(self.queue) % len(self.records)]
            sx, sy = image.width / record.image_size[0], image.height / record.image_size[1]
            boxes = [[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in record.boxes]
            out.append(_detection(record.label, float(record.label == "fake"), record.label, boxes,
                                  record.explanation, image.size))
            self.queue.append(image.size)
        return out


def _records(tmp_path, n=4) -> list[Record]:
    synthesize(tmp_path / "mini", n=n, seed=0, test_fraction=0.5)
    records, report = load_records(tmp_path / "mini" / "test.jsonl")
    assert report.n_good == len(records) > 0
    return records


def test_evaluate_runs_every_condition(tmp_path):
    records = _records(tmp_path, n=8)
    oracle = _Oracle(records)
    result = evaluate(oracle, records, batch_size=3, robustness=True, progress=False)
    assert list(result["metrics"]) == ["clean", "jpeg_q50", "downscale_0.5"]
    for m in result["metrics"].values():
        assert m["accuracy"] == 1.0 and m["bleu2"] == pytest.approx(1.0)
        assert m["iou"] is None or m["iou"] == pytest.approx(1.0, abs=1e-6)  # boxes scale with the image
    assert len(oracle.queue) == 3 * len(records)
    assert [p["id"] for p in result["predictions"]] == [r.id for r in records]
    table = format_table(result["metrics"])
    assert table.splitlines()[0] == "| metric | clean | jpeg_q50 | downscale_0.5 |" and "| accuracy | 1.000 |" in table


def test_cli_eval_writes_json(tiny_vlm, tmp_path, capsys):
    """Four records through the real tiny model, three conditions (about 7 s on 2 CPU cores)."""
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_vlm("qwen2_5_vl"), folder)
    codec = BoxCodec.from_processor("qwen2_5_vl", AutoProcessor.from_pretrained(folder))
    CheckpointInfo(ProtocolConfig(codec=codec), {"locate": {"max_new_tokens": 8}, "examine": {"max_new_tokens": 8}}
                   ).save(folder)
    synthesize(tmp_path / "mini", n=8, seed=0, test_fraction=0.5)
    out = tmp_path / "eval" / "result.json"
    code = main(["eval", "--checkpoint", str(folder), "--data", str(tmp_path / "mini" / "test.jsonl"),
                 "--out", str(out), "--robustness", "--batch-size", "4"])
    printed = capsys.readouterr().out
    assert code == 0 and f"wrote {out}" in printed and "| accuracy |" in printed
    result = json.loads(out.read_text())
    assert set(result["metrics"]) == {"clean", "jpeg_q50", "downscale_0.5"} and len(result["predictions"]) == 4
    clean = result["metrics"]["clean"]
    assert clean["n"] == 4 and clean["no_verdict_rate"] == 1.0 and clean["accuracy"] == 0.0  # garbage = wrong
    assert clean["locate_format_error_rate"] == 1.0 and 0.0 <= clean["auroc"] <= 1.0


def test_cli_eval_limit_and_errors(tiny_vlm, tmp_path, capsys):
    synthesize(tmp_path / "mini", n=4, seed=0, test_fraction=0.5)
    data = str(tmp_path / "mini" / "test.jsonl")
    assert main(["eval", "--checkpoint", str(tiny_vlm("qwen2_5_vl")), "--data", data]) == 2
    assert "is not a ZoomIn checkpoint" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tmp_path / "none"), "--data", data]) == 2
    assert capsys.readouterr().err.startswith("zoomin eval: error: no such file or folder")
    with pytest.raises(SystemExit):
        main(["eval", "--checkpoint", str(tmp_path), "--data", data, "--limit", "0"])
