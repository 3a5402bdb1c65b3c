"""The two-stage detector and `zoomin detect` on a tiny random-weight Qwen2.5-VL.

Random weights write garbage, so these tests check plumbing: garbage parses to "no verdict" plus
problems, batching keeps results per image and in order, and when the model is made to answer a
known text, boxes land in original pixels and the crops are exactly the training crops.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor

from rl.cli import main
from zoomin.checkpoint import CheckpointError, CheckpointInfo
from zoomin.codecs import BoxCodec
from zoomin.detector import Detection, ZoomInDetector
from zoomin.images import ImageProblem
from zoomin.protocol import ProtocolConfig
from zoomin.viz import render
from zoomin.zoom import zoom_in

SIZES = [(150, 100), (64, 200), (300, 300)]


@pytest.fixture(scope="module")
def checkpoint(tiny_vlm, tmp_path_factory):
    """A copy of the tiny model with a zoomin.json (short generation keeps the tests fast)."""
    folder = tmp_path_factory.mktemp("ckpt") / "tiny"
    shutil.copytree(tiny_vlm("qwen2_5_vl"), folder)
    codec = BoxCodec.from_processor("qwen2_5_vl", AutoProcessor.from_pretrained(folder))
    CheckpointInfo(ProtocolConfig(codec=codec), {"locate": {"max_new_tokens": 12}, "examine": {"max_new_tokens": 12}}
                   ).save(folder)
    return folder


@pytest.fixture(scope="module")
def detector(checkpoint):
    return ZoomInDetector.from_pretrained(checkpoint)


def _images(sizes=SIZES):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def test_garbage_answers_give_no_verdict_and_problems(detector):
    images = _images()
    results = detector.detect(images, batch_size=2)
    assert [r.image_size for r in results] == SIZES
    for r in results:
        assert r.verdict is None and r.problems and not r.examine_strict
        assert any(p.startswith("locate: ") for p in r.problems) and any(p.startswith("examine: ") for p in r.problems)
        assert 0.0 <= r.score <= 1.0
        assert json.loads(r.to_json())["image_size"] == list(r.image_size) and "crops" not in r.to_dict()


def test_batching_with_left_padding_matches_one_by_one(detector):
    images = _images()
    batched = detector.detect(images, batch_size=3)
    for image, b in zip(images, batched):
        (single,) = detector.detect([image], batch_size=1)
        assert (single.locate_text, single.examine_text) == (b.locate_text, b.examine_text)
        assert single.score == pytest.approx(b.score, abs=1e-4)


def _force(detector, monkeypatch, answers: dict[str, list[str]]) -> list:
    """Make generation return fixed answers per query; returns the inputs the model was given."""
    seen = []

    def generate(inputs, stage):
        seen.append((stage, inputs))
        texts = answers[stage][: len(inputs["input_ids"])]
        return texts, [False] * len(texts)  # none cut at the budget

    monkeypatch.setattr(detector, "_generate", generate)
    return seen


def test_forced_answers_decode_boxes_to_original_pixels_and_crop_like_training(detector, monkeypatch):
    images = _images(SIZES[:2])
    codec, protocol = detector.protocol.codec, detector.protocol
    wanted = [[[30, 20, 90, 60], [100, 10, 150, 95]], [[5, 50, 40, 150]]]
    coords = [[codec.encode(b, im.size) for b in boxes] for im, boxes in zip(images, wanted)]
    out_of_image = [[-20, -20, 10000, 10000]]  # clamped to the whole image
    degenerate = [[40, 40, 40, 90]]  # zero width: dropped with a reason
    locate = [
        protocol.render_locate("Region 1: smeared texture", coords[0] + out_of_image, "real"),
        protocol.render_locate("Region 1: checkerboard", coords[1] + degenerate, "fake"),
    ]
    examine = [protocol.render_examine("Region 1 shows smeared texture.", "fake"), "I cannot tell."]
    seen = _force(detector, monkeypatch, {"locate": locate, "examine": examine})

    first, second = detector.detect(images, batch_size=2)
    for det, image, c in zip((first, second), images, coords):
        expected = [codec.decode(b, image.size) for b in c]
        assert np.allclose(det.boxes[: len(expected)], expected)
        assert np.abs(np.subtract(det.boxes[: len(expected)], wanted[images.index(image)])).max() < 2  # rounding
        crops = zoom_in(image, det.boxes, protocol).crops
        assert len(det.crops) == len(crops) and all(
            np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(det.crops, crops))
    assert first.boxes[-1] == [0.0, 0.0, 150.0, 100.0] and len(first.boxes) == 3
    assert (first.verdict, first.preliminary_verdict, first.problems) == ("fake", "real", [])
    assert first.locate_strict and first.examine_strict and first.explanation == "Region 1 shows smeared texture."
    assert first.locate_explanation == "Region 1: smeared texture"
    assert len(second.boxes) == 1 and second.preliminary_verdict == "fake" and second.verdict is None
    assert any(p.startswith("locate: box 2 dropped: box has zero area") for p in second.problems)
    assert "examine: missing <think>" in second.problems
    # query 2 showed each region by its box in model coordinates
    stage, inputs = seen[1]
    prompt = detector.processor.tokenizer.decode(inputs["input_ids"][0], skip_special_tokens=False)
    shown = zoom_in(images[0], first.boxes, protocol).region_boxes
    assert stage == "examine" and f"Region 1: [{','.join(map(str, shown[0]))}]" in prompt
    assert prompt.count("<|vision_start|>") == 1 + len(first.crops)


def test_score_is_the_models_fake_probability_at_the_verdict(detector, monkeypatch):
    """Recompute P(fake) by hand for two rows of different lengths (so padding is exercised)."""
    images = _images(SIZES[:2])
    protocol = detector.protocol
    examine = [protocol.render_examine("smeared texture", "fake"), "no tags at all"]
    locate = [protocol.render_locate("x", [], "fake")] * 2
    _force(detector, monkeypatch, {"locate": locate, "examine": examine})
    results = detector.detect(images, batch_size=2)

    tok = detector.processor.tokenizer
    # The tiny tokenizer merges the tag's ">" into the word: ">fake" and ">real" are single tokens.
    real_id, fake_id = tok.convert_tokens_to_ids([">real", ">fake"])
    prefixes = ["<think>smeared texture</think>\n<verdict", "<think></think>\n<verdict"]
    for image, prefix, result in zip(images, prefixes, results):
        query = zoom_in(image, [], protocol)
        messages, crops = query.messages, query.images
        text = detector.processor.apply_chat_template(messages, add_generation_prompt=True) + prefix
        inputs = detector.processor(text=[text], images=[crops], return_tensors="pt")
        with torch.inference_mode():
            logits = detector.model(**inputs).logits[0, -1]
        expected = torch.softmax(logits[[real_id, fake_id]], dim=-1)[1].item()
        assert result.score == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_vl"])
def test_other_families_batch_and_decode_on_the_grid(tiny_vlm, tmp_path, monkeypatch, family):
    folder = tmp_path / family
    shutil.copytree(tiny_vlm(family), folder)
    codec = BoxCodec.from_processor(family, AutoProcessor.from_pretrained(folder))  # the budget it is served with
    CheckpointInfo(ProtocolConfig(codec=codec), {"locate": {"max_new_tokens": 6},
                                                 "examine": {"max_new_tokens": 6}}).save(folder)
    detector = ZoomInDetector.from_pretrained(folder)
    images = _images(SIZES[:2])
    batched = detector.detect(images, batch_size=2)
    for image, b in zip(images, batched):
        (single,) = detector.detect([image], batch_size=1)
        assert (single.examine_text, single.score) == (b.examine_text, pytest.approx(b.score, abs=1e-4))

    locate = [detector.protocol.render_locate("x", [[100, 200, 500, 1000]], "fake")] * 2
    _force(detector, monkeypatch, {"locate": locate, "examine": ["", ""]})
    first, second = detector.detect(images, batch_size=2)
    assert np.allclose(first.boxes, [[15, 20, 75, 100]]) and np.allclose(second.boxes, [[6.4, 40, 32, 200]])


def test_generation_never_writes_vision_placeholders(detector):
    image_token = detector.model.config.image_token_id
    assert all(image_token in g.suppress_tokens for g in detector.generation.values())


def test_locate_only(detector):
    results = detector.locate_only(_images(), batch_size=2)
    assert [r.image_size for r in results] == SIZES
    assert all(r.preliminary_verdict is None and r.problems and not r.strict for r in results)


def test_bad_images_and_bad_checkpoints_fail_clearly(detector, checkpoint, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(ImageProblem, match="cannot be decoded"):
        detector.detect([_images()[0], bad])
    with pytest.raises(CheckpointError, match="not a ZoomIn checkpoint"):
        ZoomInDetector.from_pretrained(tmp_path)
    wrong = tmp_path / "wrong"
    shutil.copytree(checkpoint, wrong)
    CheckpointInfo(ProtocolConfig()).save(wrong)  # default codec: Qwen2.5-VL's real pixel bounds
    with pytest.raises(CheckpointError, match="boxes would be decoded wrongly"):
        ZoomInDetector.from_pretrained(wrong)


def test_render_draws_image_crops_and_caption():
    image = _images(SIZES[:1])[0]
    crop = Image.new("RGB", (112, 80), "red")
    det = Detection("fake", 0.8, "real", [[10, 10, 60, 50]], "", "", None, "Region 1 looks smeared.", [crop], [],
                    image.size, True, True)
    picture = render(image, det)
    assert picture.width >= 384 and picture.height > 384 * 100 / 150 + 80
    assert (255, 0, 0) in {picture.getpixel((x, y)) for x in range(picture.width) for y in range(256, picture.height)}


def _save_pngs(tmp_path):
    paths = []
    for i, image in enumerate(_images(SIZES[:2])):
        paths.append(tmp_path / f"img{i}.png")
        image.save(paths[-1])
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return [str(paths[0]), str(bad), str(paths[1])]


def test_cli_detect_goes_on_after_a_bad_image(checkpoint, tmp_path, capsys):
    good0, bad, good1 = _save_pngs(tmp_path)
    viz = tmp_path / "viz"
    code = main(["detect", good0, bad, good1, "--checkpoint", str(checkpoint), "--save-viz", str(viz),
                 "--batch-size", "2"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.strip().count("\n") == 0 and err.startswith(f"zoomin detect: {bad}: error: ")
    assert out.index(f"{good0}: no verdict") < out.index(f"{good1}: no verdict") and "format problems:" in out
    assert sorted(p.name for p in viz.iterdir()) == ["img0.png", "img1.png"]
    assert Image.open(viz / "img0.png").width >= 384

    code = main(["detect", good0, good1, "--checkpoint", str(checkpoint), "--json"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and [json.loads(line)["image"] for line in lines] == [good0, good1]
    assert set(json.loads(lines[0])) >= {"verdict", "score", "boxes", "explanation", "problems"}


def test_cli_detect_without_zoomin_json_is_one_line(tiny_vlm, tmp_path, capsys):
    image = tmp_path / "a.png"
    _images(SIZES[:1])[0].save(image)
    assert main(["detect", str(image), "--checkpoint", str(tiny_vlm("qwen2_5_vl"))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a ZoomIn checkpoint" in err


def test_in_context_checkpoints_examine_after_their_own_locate_answer(tiny_vlm, tmp_path, monkeypatch):
    """A checkpoint trained with examine_in_context runs query 2 as the follow-up turn it learned."""
    folder = tmp_path / "ctx"
    shutil.copytree(tiny_vlm("qwen2_5_vl"), folder)
    codec = BoxCodec.from_processor("qwen2_5_vl", AutoProcessor.from_pretrained(folder))
    protocol = ProtocolConfig(codec=codec, examine_in_context=True)
    CheckpointInfo(protocol).save(folder)
    detector = ZoomInDetector.from_pretrained(folder)
    (image,) = _images(SIZES[:1])
    locate = protocol.render_locate("Region 1: smear", [codec.encode([30, 20, 90, 60], image.size)], "fake")
    seen = _force(detector, monkeypatch, {"locate": [locate], "examine": ["<think>x</think><verdict>fake</verdict>"]})
    (result,) = detector.detect([image])
    prompt = detector.processor.tokenizer.decode(seen[1][1]["input_ids"][0], skip_special_tokens=False)
    assert locate in prompt and prompt.count("<|vision_start|>") == 1 + len(result.crops) == 2
    assert prompt.index(locate) < prompt.index("Region 1: [")


def test_answers_cut_at_the_budget_are_flagged_and_counted(detector):
    """An answer that reaches max_new_tokens without its end-of-turn token is marked cut (its verdict
    is likely lost), and evaluation counts such answers per query."""
    from zoomin.metrics import compute_metrics

    budgets = {stage: g.max_new_tokens for stage, g in detector.generation.items()}
    detector.generation["locate"].max_new_tokens = 1  # nothing finishes in one token
    try:
        (det,) = detector.detect(_images(SIZES[:1]))
    finally:
        detector.generation["locate"].max_new_tokens = budgets["locate"]
    assert det.locate_cut
    metrics = compute_metrics([det], ["fake"], [[]], ["x"])
    assert metrics["locate_cut_rate"] == 1.0 and metrics["examine_cut_rate"] == float(det.examine_cut)
