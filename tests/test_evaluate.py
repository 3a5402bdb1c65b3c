"""Metrics against hand-computed values, the evaluation loop, and `zoomin eval` end to end."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image
from transformers import AutoProcessor

from rl.cli import main
from zoomin.boxes import iou
from zoomin.checkpoint import CheckpointInfo
from zoomin.codecs import BoxCodec
from zoomin.data import Record, load_records
from zoomin.detector import Detection, Located
from zoomin.evaluate import downscale, evaluate, format_table, jpeg, random_regions
from zoomin.metrics import compute_metrics, localisation_iou, text_metrics, verdict_change, verdict_metrics
from zoomin.protocol import ProtocolConfig
from zoomin.synth import synthesize, synthesize_zoom_needed

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
    """A detector stand-in that answers each record's label and its boxes, scaled to the image it gets.

    Query 2 says "fake" for a fake only when a crop it is shown overlaps one of the record's boxes, as
    a model that needs the zoom would; the located crops always do, random ones only by chance.
    """

    protocol = ProtocolConfig()  # its crops' zoom factor is reported like a real detector's

    def __init__(self, records):
        self.queue = []
        self.records = records

    def locate_only(self, images, batch_size):
        out = []
        for image in images:
            record = self.records[len(self.queue) % len(self.records)]
            sx, sy = image.width / record.image_size[0], image.height / record.image_size[1]
            boxes = [[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in record.boxes]
            out.append(Located(record.label, boxes, record.id, None, [], True, image.size))
            self.queue.append(image.size)
        return out

    def examine(self, images, located, regions=None):
        out = []
        for loc, shown in zip(located, regions if regions is not None else [loc.boxes for loc in located]):
            label = loc.preliminary_verdict
            record = next(r for r in self.records if r.id == loc.text)
            if label == "fake" and not any(iou(c, b) > 0 for c in shown for b in loc.boxes):
                label = "real"
            out.append(_detection(label, float(label == "fake"), loc.preliminary_verdict, loc.boxes,
                                  record.explanation, loc.image_size))
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


def test_random_crop_ablation_shows_crops_of_the_located_sizes_elsewhere(tmp_path):
    synthesize_zoom_needed(tmp_path / "zoom", n=40, seed=2, test_fraction=0.5, cues=(1, 1))
    records, _ = load_records(tmp_path / "zoom" / "test.jsonl")
    result = evaluate(_Oracle(records), records, batch_size=4, progress=False)
    clean = result["metrics"]["clean"]
    # the located crops settle every verdict; random crops of the same sizes rarely land on the cue
    assert clean["accuracy"] == 1.0 and clean["preliminary_accuracy"] == 1.0
    assert 0.5 <= clean["random_crop_accuracy"] <= 0.9
    assert "random_crop_accuracy" not in evaluate(_Oracle(records), records, random_crops=False,
                                                  progress=False)["metrics"]["clean"]
    # the same seed places the same crops
    assert evaluate(_Oracle(records), records, batch_size=4, progress=False)["metrics"] == result["metrics"]


def test_random_regions_keep_sizes_inside_the_image():
    import numpy as np

    rng = np.random.default_rng(0)
    boxes = [[0, 0, 56, 56], [10, 20, 40, 100], [0, 0, 300, 50]]
    for _ in range(50):
        placed = random_regions(boxes, (224, 160), rng)
        for (x1, y1, x2, y2), b in zip(placed, boxes):
            assert x1 >= 0 and y1 >= 0 and x2 <= 224 and y2 <= 160
            assert y2 - y1 == pytest.approx(min(b[3] - b[1], 160))
            assert x2 - x1 == pytest.approx(min(b[2] - b[0], 224))


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
