"""Zoom-crop consistency terms on hand-checked rows, and the exact union-area sweep behind coverage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards import ZoomConsistency, ZoomCoverage, get_reward
from rewards.zoom import covered_area
from zoomin.protocol import CropPolicy
from zoomin.zoom import crop_window

# A 100x100 image whose model frame is the image itself, so region boxes read as pixels.
ROW = {"label": "fake", "image_size": [100, 100], "coord_frame": [100, 100], "boxes": [[0, 0, 10, 10]]}
REGIONS = [[10, 10, 30, 30], [60, 60, 90, 90]]
WINDOWS = [[6, 6, 34, 34], [55, 55, 95, 95]]


def examine(think: str, verdict: str = "fake") -> str:
    return f"<think>{think}</think>\n<verdict>{verdict}</verdict>"


def score(name: str, completions: list, **row) -> list:
    columns = {**ROW, "region_boxes": REGIONS, "crop_windows": WINDOWS, **row}
    return get_reward(name)(completions, **{k: [v] * len(completions) for k, v in columns.items()})


def test_valid_crops_share():
    assert score("zoom_valid_crops", ["x"]) == [1.0]
    # Third region inverted, fourth region's window outside the image, fifth window below the min side 28.
    regions = [*REGIONS, [50, 50, 40, 60], [0, 0, 20, 20], [70, 0, 90, 20]]
    windows = [*WINDOWS, [40, 40, 70, 70], [-5, 0, 25, 30], [70, 0, 90, 20]]
    assert score("zoom_valid_crops", ["x"], region_boxes=regions, crop_windows=windows) == [pytest.approx(2 / 5)]
    # A region without a window, a region box outside the image, junk entries: all invalid.
    assert score("zoom_valid_crops", ["x"], crop_windows=WINDOWS[:1]) == [0.5]
    assert score("zoom_valid_crops", ["x"], region_boxes=[[90, 90, 120, 120]], crop_windows=[[72, 72, 100, 100]]) == [0]
    assert score("zoom_valid_crops", ["x"], region_boxes=["junk", None], crop_windows=[None, 5]) == [0.0]
    # A window that nearly repeats an earlier one (IoU >= 0.9) shows the same pixels twice: not counted.
    repeated = {"region_boxes": [REGIONS[0]] * 3, "crop_windows": [WINDOWS[0], WINDOWS[0], [7, 6, 35, 34]]}
    assert score("zoom_valid_crops", ["x"], **repeated) == [pytest.approx(1 / 3)]
    # Nothing shown: 1.0 where no annotated box called for a crop, else 0.0. Unusable size: None.
    assert score("zoom_valid_crops", ["x"], region_boxes=[], crop_windows=[], boxes=[]) == [1.0]
    assert score("zoom_valid_crops", ["x"], region_boxes=[], crop_windows=[]) == [0.0]
    assert score("zoom_valid_crops", ["x"], image_size=[0, 0]) == [None]


def test_valid_crops_count_the_boxes_the_zoom_step_dropped():
    """Junk boxes of the locate answer never reach the region columns; locate_completions shows them."""
    good = [10, 10, 30, 30]
    junk = [[50, 50, 40, 60], [5, 5, 5, 9], [200, 200, 300, 300]]  # inverted, zero-area, outside the image
    for boxes, value in [([good], 1.0), ([*junk, good], 1 / 4), ([good, *junk[:1]], 1 / 2)]:
        located = f"<think>x</think><boxes>{boxes}</boxes><verdict>fake</verdict>"
        row = {"locate_completions": located, "region_boxes": [good], "crop_windows": [WINDOWS[0]]}
        assert score("zoom_valid_crops", ["x"], **row) == [pytest.approx(value)], boxes
    # Only junk: no region shown, all dropped -> 0. No box list at all -> 0. An empty list -> as no regions.
    nothing = {"region_boxes": [], "crop_windows": []}
    only_junk = "<think>x</think><boxes>[[50,50,40,60]]</boxes><verdict>fake</verdict>"
    assert score("zoom_valid_crops", ["x"], locate_completions=only_junk, **nothing) == [0.0]
    assert score("zoom_valid_crops", ["x"], locate_completions="<verdict>real</verdict>", boxes=[], **nothing) == [0.0]
    empty = "<think>x</think><boxes>[]</boxes><verdict>real</verdict>"
    assert score("zoom_valid_crops", ["x"], locate_completions=empty, boxes=[], **nothing) == [1.0]


def test_valid_crops_accepts_what_crop_window_makes_for_small_images():
    # On a 20x20 image the crop cannot reach 28 px; the policy gives the whole side, which is valid.
    window = crop_window([5, 5, 8, 8], (20, 20), CropPolicy())
    assert window == [0, 0, 20, 20]
    row = {"image_size": [20, 20], "coord_frame": [20, 20], "region_boxes": [[5, 5, 8, 8]], "crop_windows": [window]}
    assert score("zoom_valid_crops", ["x"], **row) == [1.0]


def test_citations_share_of_existing_regions():
    texts = [
        examine("Region 1 is smeared. Region 3 is warped."),  # cites {1, 3}, two regions shown -> 1/2
        examine("Region 1 and region 2 both show it."),  # case-insensitive, both exist -> 1
        examine("Nothing specific."),  # cites nothing -> 1 (nothing invented)
        examine("Region 0 and Region 12 look odd."),  # none exist -> 0
        "no tags at all",  # no explanation -> 0
    ]
    assert score("zoom_citations", texts) == [0.5, 1.0, 1.0, 0.0, 0.0]


def test_verdict_agreement():
    texts = [
        examine("Region 1 shows smeared fur."),  # fake citing an existing region -> 1
        examine("The fur looks smeared."),  # fake citing nothing -> 0
        examine("Region 7 is smeared."),  # fake citing only a region that does not exist -> 0
        examine("Region 1 shows natural sensor noise. Shadows agree.", "real"),  # real, clean citation -> 1
        examine("Region 1 is fine. Region 2 shows warped lines.", "real"),  # real calling a region warped -> 0
        examine("Blurry background overall. Region 1 is fine.", "real"),  # artifact word in another sentence -> 1
        examine("Region 1 is smeared.", "maybe"),  # no verdict -> 0
    ]
    assert score("zoom_verdict_agreement", texts) == [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    custom = get_reward("zoom_verdict_agreement", artifact_words=["noise"])
    assert custom([texts[3]], label=["real"], region_boxes=[REGIONS]) == [0.0]
    with pytest.raises(ValueError, match="artifact_words"):
        get_reward("zoom_verdict_agreement", artifact_words="blur")


@pytest.mark.parametrize(
    ("think", "verdict", "value"),
    [
        # A real image's regions described as clean, with negated cue words: the paper's real explanations.
        ("Region 1 shows natural skin texture without any blur.", "real", 1.0),
        ("Region 1 is blur-free. Region 2 isn't smeared.", "real", 1.0),
        ("Region 1 has no visible artifacts or warping.", "real", 1.0),
        # A negation ends with its clause: the second clause calls region 2 smeared.
        ("Region 1 shows no blur, but Region 2 is smeared.", "real", 0.0),
        ("Region 1 is not natural.", "real", 0.0),  # a negated clean word flags
        # Clearing a region is no evidence for a fake; any other sentence citing an existing region is.
        ("Region 1 shows natural skin texture without any blur.", "fake", 0.0),
        ("There is no blur in Region 1 and nothing looks smeared.", "fake", 0.0),
        ("Region 1 looks natural. Region 2 shows smeared fur.", "fake", 1.0),
        ("Region 1 shows six fingers.", "fake", 1.0),
    ],
)
def test_verdict_agreement_reads_negations(think, verdict, value):
    assert score("zoom_verdict_agreement", [examine(think, verdict)]) == [value]


def test_coverage_is_recall_times_precision():
    gt = [[0, 0, 10, 10], [20, 0, 30, 10]]  # two disjoint 100 px^2 boxes, union 200
    # Recall 50 / 200 of the annotated area; the region box lies wholly on it: precision 1.
    half_of_first = {"region_boxes": [[0, 0, 5, 10]], "crop_windows": [[0, 0, 5, 10]]}
    assert score("zoom_coverage", ["x"], boxes=gt, **half_of_first) == [0.25]
    # Overlapping windows are a union, not a sum: [0,6] u [4,10] covers the first box once -> 100 / 200.
    overlap = {"region_boxes": [[0, 0, 6, 10], [4, 0, 10, 10]], "crop_windows": [[0, 0, 6, 10], [4, 0, 10, 10]]}
    assert score("zoom_coverage", ["x"], boxes=gt, **overlap) == [0.5]
    # A region over half the image does not count, whatever its window covers.
    giant = {"region_boxes": [[0, 0, 100, 60]], "crop_windows": [[0, 0, 100, 60]]}
    assert score("zoom_coverage", ["x"], boxes=gt, **giant) == [0.0]
    # Allowed, it covers everything (recall 1) but only 200 of its 6000 px^2 are artifact.
    assert ZoomCoverage(max_box_fraction=1.0)(
        ["x"], label=["fake"], boxes=[gt], image_size=[[100, 100]], coord_frame=[[100, 100]],
        region_boxes=[giant["region_boxes"]], crop_windows=[giant["crop_windows"]],
    ) == [pytest.approx(200 / 6000)]
    # Four quadrants, each a quarter of the image, cover a 5 px artifact in full: precision 25 / 10000.
    quadrants = [[0, 0, 50, 50], [50, 0, 100, 50], [0, 50, 50, 100], [50, 50, 100, 100]]
    tiled = {"region_boxes": quadrants, "crop_windows": quadrants}
    assert score("zoom_coverage", ["x"], boxes=[[40, 40, 45, 45]], **tiled) == [pytest.approx(25 / 10_000)]
    # A junk region box adds nothing to either side; a valid one off target lowers precision.
    off = {"region_boxes": [[0, 0, 5, 10], "junk", [50, 50, 55, 60]], "crop_windows": [[0, 0, 5, 10], None, None]}
    assert score("zoom_coverage", ["x"], boxes=gt, **off) == [pytest.approx(0.25 * 0.5)]
    # A region box whose area underflows to 0 (a frame of 1e308 shrinks it to 1e-306 px) covers nothing.
    assert score("zoom_coverage", ["x"], coord_frame=[1e308, 1e308], **half_of_first) == [0.0]
    # Real images and fakes without annotations: None. No crops shown: nothing covered.
    assert score("zoom_coverage", ["x"], label="real") == [None]
    assert score("zoom_coverage", ["x"], boxes=[]) == [None]
    assert score("zoom_coverage", ["x"], region_boxes=[], crop_windows=[]) == [0.0]


def test_consistency_is_the_weighted_mean_of_available_parts():
    text = examine("Region 1 is smeared. Region 3 is warped.")
    # valid_crops 1, citations 1/2, agreement 1, coverage: the annotation is region 1, inside its
    # window (recall 1), and 400 of the regions' 400 + 900 px^2 (precision 4/13).
    parts = {"valid_crops": 1.0, "citations": 0.5, "verdict_agreement": 1.0, "coverage": 4 / 13}
    gt = {"boxes": [REGIONS[0]]}
    for name, value in parts.items():
        assert score(f"zoom_{name}", [text], **gt) == [pytest.approx(value)]
    assert score("zoom_consistency", [text], **gt) == [pytest.approx(sum(parts.values()) / 4)]
    weighted = get_reward("zoom_consistency", weights={"coverage": 0.0, "citations": 2.0})
    row = {**ROW, "region_boxes": REGIONS, "crop_windows": WINDOWS}
    assert weighted([text], **{k: [v] for k, v in row.items()}) == [pytest.approx((1 + 2 * 0.5 + 1) / 4)]
    # Real row: coverage is None, so the mean is over the other three parts.
    assert score("zoom_consistency", [examine("Region 1 is clean.", "real")], label="real") == [1.0]
    with pytest.raises(ValueError, match="unknown zoom parts"):
        ZoomConsistency(weights={"colour": 1.0})
    with pytest.raises(ValueError, match="positive weight"):
        ZoomConsistency(weights=dict.fromkeys(("valid_crops", "citations", "verdict_agreement", "coverage"), 0))


def test_covered_area_of_overlapping_targets():
    # Targets overlap in [5,10]^2: union 100 + 100 - 25 = 175. A window over everything covers all of it;
    # a window [0,0,5,15] covers x in [0,5] of the first box only: 5 * 10 = 50.
    targets = [[0, 0, 10, 10], [5, 5, 15, 15]]
    assert covered_area(targets, [[0, 0, 15, 15]]) == (175.0, 175.0)
    assert covered_area(targets, [[0, 0, 5, 15]]) == (175.0, 50.0)
    assert covered_area(targets, []) == (175.0, 0.0)


small_box = st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(1, 6), st.integers(1, 6)).map(
    lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(small_box, min_size=1, max_size=5), st.lists(small_box, max_size=5))
def test_covered_area_matches_a_pixel_count(targets, windows):
    def pixels(boxes):
        return {(x, y) for b in boxes for x in range(b[0], b[2]) for y in range(b[1], b[3])}

    total, covered = covered_area(targets, windows)
    assert total == len(pixels(targets))
    assert covered == len(pixels(targets) & pixels(windows))
