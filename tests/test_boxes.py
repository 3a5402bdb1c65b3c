"""Box geometry: validity, IoU, matching and crop windows."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoomin.boxes import box_problem, iou, match_boxes, mean_best_iou
from zoomin.protocol import CropPolicy
from zoomin.zoom import crop_window


def test_iou_known_values():
    # Two 10x10 squares overlapping in a 5x10 strip: 50 / (100 + 100 - 50) = 1/3.
    assert iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(1 / 3)
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0  # touching edges share no area
    assert iou([0, 0, 10, 10], [2, 2, 4, 4]) == pytest.approx(4 / 100)
    assert iou([5, 5, 1, 1], [0, 0, 10, 10]) == 0.0  # inverted box counts as empty


def test_mean_best_iou_is_the_papers_formula():
    gt = [[0, 0, 10, 10], [20, 20, 30, 30]]
    pred = [[0, 0, 10, 10], [5, 0, 15, 10], [100, 100, 110, 110]]
    # best IoUs: 1, 1/3, 0 -> mean 4/9
    assert mean_best_iou(pred, gt) == pytest.approx(4 / 9)
    assert mean_best_iou([], gt) == 0.0
    assert mean_best_iou(pred, []) == 0.0


def test_match_boxes_is_one_to_one():
    gt = [[0, 0, 10, 10]]
    pred = [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 9, 10]]
    matches = match_boxes(pred, gt)
    assert len(matches) == 1 and matches[0][1] == 0 and matches[0][2] == 1.0
    # the assignment maximises total IoU, not greedy order
    gt2 = [[0, 0, 10, 10], [8, 0, 18, 10]]
    pred2 = [[4, 0, 14, 10], [0, 0, 10, 10]]
    pairs = {(i, j) for i, j, _ in match_boxes(pred2, gt2)}
    assert pairs == {(1, 0), (0, 1)}


@pytest.mark.parametrize(
    ("box", "fragment"),
    [
        ([1, 2, 3], "4 numbers"),
        ("0,0,1,1", "4 numbers"),
        ([0, 0, "a", 1], "non-numeric"),
        ([0, 0, True, 1], "non-numeric"),
        ([0, 0, math.nan, 1], "NaN"),
        ([5, 0, 1, 4], "inverted"),
        ([1, 1, 1, 4], "zero area"),
        ([0, 0, 101, 50], "outside"),
        ([-1, 0, 10, 10], "outside"),
    ],
)
def test_box_problem_reasons(box, fragment):
    assert fragment in box_problem(box, (100, 50))


def test_valid_box_has_no_problem():
    assert box_problem([0, 0, 100, 50], (100, 50)) is None
    assert box_problem([0.5, 0.5, 2.5, 3.0]) is None


@settings(max_examples=300, deadline=None)
@given(
    w=st.integers(1, 4000), h=st.integers(1, 4000),
    fx=st.tuples(st.floats(-0.5, 1.5), st.floats(-0.5, 1.5)), fy=st.tuples(st.floats(-0.5, 1.5), st.floats(-0.5, 1.5)),
    pad=st.floats(0, 1), min_side=st.integers(1, 300),
)
def test_crop_window_is_inside_and_large_enough(w, h, fx, fy, pad, min_side):
    box = [min(fx) * w, min(fy) * h, max(fx) * w + 1e-3, max(fy) * h + 1e-3]
    x1, y1, x2, y2 = crop_window(box, (w, h), CropPolicy(pad_ratio=pad, min_side=min_side))
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    assert x2 - x1 >= min(min_side, w) and y2 - y1 >= min(min_side, h)


def test_crop_window_contains_padded_box_when_it_fits():
    x1, y1, x2, y2 = crop_window([40, 40, 60, 60], (100, 100), CropPolicy(pad_ratio=0.25, min_side=4))
    assert [x1, y1, x2, y2] == [35, 35, 65, 65]
    # near the border the window shifts inwards instead of shrinking
    assert crop_window([0, 0, 4, 4], (100, 100), CropPolicy(pad_ratio=0, min_side=28)) == [0, 0, 28, 28]


def test_crop_policy_rejects_nonsense():
    with pytest.raises(ValueError, match="pad_ratio"):
        CropPolicy(pad_ratio=-1)
    with pytest.raises(ValueError, match="min_side"):
        CropPolicy(min_side=0)
