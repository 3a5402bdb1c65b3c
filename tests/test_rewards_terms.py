"""Box, verdict and format rewards on hand-checked values, and TRL's calling convention."""

from __future__ import annotations

import math

import pytest

from rewards import BoxF1, BoxIoU, FormatReward, VerdictReward, build_rewards, get_reward
from rewards._text import completion_text
from zoomin.protocol import ProtocolConfig

P = ProtocolConfig()
# Image 200x100 in a 1000x1000 frame: model x = 5 * original x, model y = 10 * original y.
FRAME = {"image_size": [200, 100], "coord_frame": [1000, 1000]}


def model_box(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    """Original-pixel box -> model coordinates of FRAME."""
    return [x1 * 5, y1 * 10, x2 * 5, y2 * 10]


def locate(boxes: list[list[float]], verdict: str = "fake", think: str = "suspicious hands") -> str:
    return f"<think>{think}</think>\n<boxes>{boxes}</boxes>\n<verdict>{verdict}</verdict>".replace(" ", "")


TRL_EXTRAS = {
    "trainer_state": object(),
    "log_extra": lambda *a, **k: None,
    "log_metric": lambda *a, **k: None,
}


def call_rows(term, completions, **columns):
    """Call ``term`` as TRL's GRPOTrainer does (extra kwargs included); columns hold one value per row."""
    n = len(completions)
    return term(
        prompts=[[{"role": "user", "content": "?"}]] * n,
        completions=completions,
        completion_ids=[[1, 2]] * n,
        some_other_column=["x"] * n,
        **TRL_EXTRAS,
        **columns,
    )


def call(term, completions, **columns):
    """:func:`call_rows` with every column's single value repeated for each completion."""
    return call_rows(term, completions, **{k: [v] * len(completions) for k, v in columns.items()})


def fake_row(gt: list[list[float]], **extra) -> dict:
    return {"label": "fake", "boxes": gt, **FRAME, **extra}


# ---- box_iou / box_f1 ------------------------------------------------------------------------------
def test_box_iou_is_mean_best_iou_after_decoding():
    # gt [0,0,10,10]; pred A [5,0,15,10]: inter 5*10 = 50, union 100 + 100 - 50 = 150 -> 1/3;
    # pred B equals gt -> 1. Mean over predictions: (1/3 + 1) / 2 = 2/3.
    text = locate([model_box(5, 0, 15, 10), model_box(0, 0, 10, 10)])
    [score] = call(BoxIoU(), [text], **fake_row([[0, 0, 10, 10]]))
    assert score == pytest.approx(2 / 3)


def test_box_iou_uses_the_coordinate_frame():
    # The same pixel numbers read without the frame would be a different box: 1000x1000 frame on a
    # 200x100 image means model [0,0,50,100] is original [0,0,10,10] -> IoU 1.
    [score] = call(BoxIoU(), [locate([[0, 0, 50, 100]])], **fake_row([[0, 0, 10, 10]]))
    assert score == pytest.approx(1.0)
    [same_frame] = call(BoxIoU(), [locate([[0, 0, 50, 100]])], **fake_row([[0, 0, 10, 10]], coord_frame=[200, 100]))
    # Now model = original: [0,0,50,100] vs [0,0,10,10]: inter 100, union 5000 -> 0.02.
    assert same_frame == pytest.approx(0.02)


def test_duplicates_and_giant_boxes_pay_under_box_iou_but_not_box_f1():
    gt = [[0, 0, 10, 10], [20, 0, 30, 10]]
    dup = locate([model_box(0, 0, 10, 10)] * 3)
    giant = locate([model_box(0, 0, 30, 10)])
    exact = locate([model_box(0, 0, 10, 10), model_box(20, 0, 30, 10)])
    iou_scores = call(BoxIoU(), [dup, giant, exact], **fake_row(gt))
    f1_scores = call(BoxF1(), [dup, giant, exact], **fake_row(gt))
    # box_iou: three copies of a perfect box -> 1; giant box: 100 / 300 with either gt box -> 1/3.
    assert iou_scores == pytest.approx([1.0, 1 / 3, 1.0])
    # box_f1 = 2 * matched IoU / (n_pred + n_gt): copies -> 2 * 1 / (3 + 2) = 0.4 (one copy matches,
    # the others only reach gt 2 at IoU 0, which is no match); giant -> 2 * (1/3) / (1 + 2) = 2/9.
    assert f1_scores == pytest.approx([0.4, 2 / 9, 1.0])


def test_invalid_predicted_boxes_count_as_zero_iou():
    # Zero-area and inverted boxes stay in the count: box_iou (1 + 0 + 0) / 3; box_f1 2 * 1 / (3 + 1).
    text = locate([model_box(0, 0, 10, 10), model_box(5, 5, 5, 9), model_box(9, 9, 1, 1)])
    assert call(BoxIoU(), [text], **fake_row([[0, 0, 10, 10]])) == pytest.approx([1 / 3])
    assert call(BoxF1(), [text], **fake_row([[0, 0, 10, 10]])) == pytest.approx([0.5])


@pytest.mark.parametrize("term", [BoxIoU(), BoxF1()], ids=["box_iou", "box_f1"])
def test_annotated_real_images_are_scored_by_iou_like_fakes(term):
    """A real image's annotated regions (its cues) are where to look: IoU decides, not real_empty."""
    cues = [[0, 0, 10, 10]]
    real = {**fake_row(cues), "label": "real"}
    hit, miss = locate([model_box(0, 0, 10, 10)], "real"), locate([model_box(50, 50, 60, 60)], "real")
    assert call(term, [hit, miss, locate([], "real")], **real) == [1.0, 0.0, 0.0]
    assert call(term, [hit], **real) == call(term, [hit], **fake_row(cues))
    # real_empty / real_boxes apply only where a real image has no annotated box
    assert call(type(term)(real_empty=0.5, real_boxes=-1.0), [locate([], "real"), hit], **real) == [0.0, 1.0]
    assert call(type(term)(real_empty=0.5), [locate([], "real")], **{**real, "boxes": []}) == [0.5]


@pytest.mark.parametrize("term", [BoxIoU(), BoxF1()], ids=["box_iou", "box_f1"])
def test_box_rules_for_real_images_missing_annotations_and_junk(term):
    real = {"label": "real", "boxes": [], **FRAME}
    assert call(term, [locate([], "real"), locate([[1, 2, 30, 40]], "real")], **real) == [1.0, 0.0]
    assert call(type(term)(real_empty=0.5, real_boxes=-1.0), [locate([], "real"), locate([[1, 2, 30, 40]])],
                **real) == [0.5, -1.0]
    unparseable = "<think>x</think><boxes>[[1,2,3]]</boxes><verdict>fake</verdict>"
    assert call(term, [unparseable, "", None], **fake_row([[0, 0, 10, 10]])) == [0.0, 0.0, 0.0]
    assert call(term, [unparseable], **real) == [0.0]
    # A fake image without a usable annotation has nothing to compare with: None.
    assert call(term, [locate([[0, 0, 50, 100]])], **fake_row([])) == [None]
    assert call(term, [locate([[0, 0, 50, 100]])], **fake_row([[5, 5, 5, 9], "junk"])) == [None]
    # Fake with an empty prediction -> 0; a label that is not real/fake -> None.
    assert call(term, [locate([])], **fake_row([[0, 0, 10, 10]])) == [0.0]
    assert call(term, [locate([])], **{**fake_row([[0, 0, 10, 10]]), "label": "maybe"}) == [None]
    # Unusable image sizes or frames cannot be decoded: None, never a division by zero.
    for bad in ([0, 0], [0, 100], None, [math.nan, 5], [True, 5], "200x100", [10**400, 5]):
        assert call(term, [locate([[0, 0, 50, 100]])], **fake_row([[0, 0, 10, 10]], image_size=bad)) == [None]
        assert call(term, [locate([[0, 0, 50, 100]])], **fake_row([[0, 0, 10, 10]], coord_frame=bad)) == [None]


@pytest.mark.parametrize("term", [BoxIoU(), BoxF1()], ids=["box_iou", "box_f1"])
def test_box_terms_return_none_for_the_prompt_only(term):
    """An annotated row without a usable frame is None whatever the answer, an empty box list included
    (it used to score 0 there and None with boxes, so the None moved the group's advantages)."""
    row = fake_row([[0, 0, 10, 10]], image_size=[0, 0])
    answers = [locate([]), locate([model_box(0, 0, 10, 10)]), "garbage", None]
    assert call(term, answers, **row) == [None] * 4
    # A real image without annotations needs no frame: the answer decides.
    assert call(term, [locate([], "real"), "garbage"], **{**row, "label": "real", "boxes": []}) == [1.0, 0.0]


def test_box_terms_read_locate_completions_in_the_joint_stage():
    examine = "<think>Region 1 is smeared.</think><verdict>fake</verdict>"
    row = fake_row([[0, 0, 10, 10]], locate_completions=locate([model_box(0, 0, 10, 10)]))
    assert call(BoxIoU(), [examine], **row) == [1.0]
    assert call(BoxIoU(source="completions"), [examine], **row) == [0.0]


# ---- verdict -------------------------------------------------------------------------------------
def test_verdict_accepts_aliases_and_weights_classes():
    answers = [
        "<think>x</think><verdict>fake</verdict>",
        "<think>x</think><verdict>AI-Generated</verdict>",
        "<think>x</think><verdict>real</verdict>",
        "<think>x</think><verdict>maybe</verdict>",
        "<think>x</think>",
    ]
    assert call(VerdictReward(), answers, label="fake") == [1.0, 1.0, 0.0, 0.0, 0.0]
    weighted = VerdictReward(class_weights={"fake": 1.0, "real": 2.0})
    assert call_rows(weighted, answers[:3], label=["fake", "fake", "real"]) == [1.0, 1.0, 2.0]
    assert call(VerdictReward(), answers[:1], label=None) == [None]
    with pytest.raises(ValueError, match="class_weights"):
        VerdictReward(class_weights={"Fake": 1.0})
    with pytest.raises(ValueError, match="must be a number"):
        VerdictReward(class_weights={"fake": -1.0})


def test_preliminary_verdict_parses_the_locate_answer():
    term = get_reward("verdict_locate")
    assert term.__name__ == "verdict_locate"
    assert call(term, [locate([], "real")], label="real") == [1.0]
    # Joint stage: the preliminary verdict lives in locate_completions, the examine verdict in completions.
    examine = "<think>x</think><verdict>fake</verdict>"
    assert call(term, [examine], label="real", locate_completions=locate([], "real")) == [1.0]
    assert call(get_reward("verdict"), [examine], label="real", locate_completions=locate([], "real")) == [0.0]


# ---- strict parses -------------------------------------------------------------------------------
MALFORMED_EXAMINE = {
    # the demo's drift (BENCHMARKS.md): repeated `</think><verdict>fake` pieces after a good answer
    "repeated tags": "<think>Region 1 is smeared</think><verdict>fake</verdict></think><verdict>fake</verdict>",
    "chatter": "Sure! <think>Region 1 is smeared</think><verdict>fake</verdict>",
    "foreign tag": "<think>Region 1 is smeared</think><boxes>[]</boxes><verdict>fake</verdict>",
}


@pytest.mark.parametrize("name", ["verdict", "bleu2", "rouge_l", "zoom_citations", "zoom_verdict_agreement"])
@pytest.mark.parametrize("malformed", list(MALFORMED_EXAMINE.values()), ids=list(MALFORMED_EXAMINE))
def test_examine_content_terms_score_malformed_answers_0_unless_strict_is_off(name, malformed):
    row = {"label": "fake", "explanation": "Region 1 is smeared", "boxes": [], "image_size": [100, 100],
           "coord_frame": [100, 100], "region_boxes": [[0, 0, 50, 50]], "crop_windows": [[0, 0, 50, 50]]}
    assert call(get_reward(name), [malformed], **row) == [0.0]
    assert call(get_reward(name, strict=False), [malformed], **row) == [pytest.approx(1.0)]


@pytest.mark.parametrize("term", [BoxIoU, BoxF1, lambda **k: get_reward("verdict_locate", **k)],
                         ids=["box_iou", "box_f1", "verdict_locate"])
def test_locate_content_terms_score_malformed_answers_0_unless_strict_is_off(term):
    good = locate([model_box(0, 0, 10, 10)])
    for malformed in (good + "<boxes>[[0,0,1,1]]</boxes>", "Sure! " + good):
        assert call(term(), [good, malformed], **fake_row([[0, 0, 10, 10]])) == [1.0, 0.0]
        assert call(term(strict=False), [malformed], **fake_row([[0, 0, 10, 10]])) == [1.0]


def test_strict_must_be_a_bool_and_reaches_terms_through_params():
    with pytest.raises(ValueError, match="strict must be true or false"):
        get_reward("verdict", strict="false")
    with pytest.raises(ValueError, match="strict must be true or false"):
        get_reward("zoom_consistency", strict=0)
    funcs, _ = build_rewards(["verdict", "box_iou"], params={"verdict": {"strict": False}})
    assert [f.strict for f in funcs] == [False, True]


def test_custom_label_words_come_from_the_protocol():
    protocol = ProtocolConfig(real_word="authentic", fake_word="synthetic", verdict_tag="answer")
    term = VerdictReward(protocol=protocol)
    assert call(term, ["<think>x</think><answer>synthetic</answer>"], label="fake") == [1.0]
    assert call(term, ["<think>x</think><verdict>fake</verdict>"], label="fake") == [0.0]


# ---- format --------------------------------------------------------------------------------------
def test_format_strict_and_soft():
    good = locate([[1, 2, 3, 4]])
    chatter = "Sure! " + good
    no_verdict = "<think>x</think><boxes>[]</boxes>"
    repeated = good + "<verdict>fake</verdict>"
    strict, soft = get_reward("format_locate"), get_reward("format_locate_soft")
    assert call(strict, [good, chatter, no_verdict, repeated, "", None], label="fake") == [1, 0, 0, 0, 0, 0]
    # Soft parts: think, boxes, verdict, whole answer strict (each 1/4).
    assert call(soft, [good, chatter, no_verdict, repeated, ""], label="fake") == [1.0, 0.75, 0.5, 0.5, 0.0]
    examine = "<think>Region 1 looks fine.</think>\n<verdict>real</verdict>"
    with_boxes = "<think>x</think><boxes>[]</boxes><verdict>real</verdict>"
    assert call(get_reward("format_examine"), [examine, with_boxes, good], label="real") == [1.0, 0.0, 0.0]
    # Examine parts: think, verdict, strict (each 1/3); a boxes tag in an examine answer breaks only strict.
    assert call(get_reward("format_examine_soft"), [examine, with_boxes], label="real") == pytest.approx([1, 2 / 3])


def test_format_stage_and_source_are_checked():
    with pytest.raises(ValueError, match="stage"):
        FormatReward(stage="joint")
    with pytest.raises(ValueError, match="never in locate_completions"):
        FormatReward(stage="examine", source="locate_completions")


# ---- completion forms and the calling convention -----------------------------------------------------
@pytest.mark.parametrize(
    ("completion", "text"),
    [
        ("plain", "plain"),
        ([{"role": "assistant", "content": "conv"}], "conv"),
        ([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "image"}, {"text": "b"}]}], "ab"),
        ([{"role": "assistant", "content": "first"}, {"role": "user", "content": "crops"},
          {"role": "assistant", "content": "last"}], "last"),
        ({"role": "assistant", "content": "dict"}, "dict"),
        ([], None),
        ([{"role": "assistant", "content": None}], None),
        (None, None),
        (42, None),
        (b"bytes", None),
    ],
)
def test_completion_text_handles_every_form(completion, text):
    assert completion_text(completion) == text


def test_conversational_completions_score_like_strings():
    text = locate([model_box(0, 0, 10, 10)])
    forms = [text, [{"role": "assistant", "content": text}], [{"role": "assistant", "content": [{"type": "text",
                                                                                                  "text": text}]}]]
    assert call(BoxIoU(), forms, **fake_row([[0, 0, 10, 10]])) == [1.0, 1.0, 1.0]


def test_missing_or_misshapen_columns_fail_loudly():
    with pytest.raises(ValueError, match="needs the dataset column 'boxes'"):
        BoxIoU()(["x"], label=["fake"], image_size=[[1, 1]], coord_frame=[[1, 1]])
    with pytest.raises(ValueError, match="one value per completion"):
        VerdictReward()(["x", "y"], label=["fake"])
    with pytest.raises(TypeError, match="must be a list"):
        VerdictReward()("x", label=["fake"])


def test_parse_cache_never_mixes_protocols():
    # The same text scored under two verdict tags, and under one protocol edited between batches.
    text = "<think>x</think><answer>fake</answer>"
    default, custom = ProtocolConfig(), ProtocolConfig(verdict_tag="answer")
    assert VerdictReward(protocol=default)([text], label=["fake"]) == [0.0]
    assert VerdictReward(protocol=custom)([text], label=["fake"]) == [1.0]
    edited = ProtocolConfig()
    term = VerdictReward(protocol=edited)
    assert term([text], label=["fake"]) == [0.0]
    edited.verdict_tag = "answer"
    assert term([text], label=["fake"]) == [1.0]


def test_box_term_parameters_are_checked():
    with pytest.raises(ValueError, match="source must be one of"):
        BoxIoU(source="examine")
    with pytest.raises(ValueError, match="real_empty must be a finite number"):
        BoxF1(real_empty=math.nan)
