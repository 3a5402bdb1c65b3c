"""No term raises or returns NaN/inf, whatever the model wrote or the columns hold.

Each hypothesis example draws a handful of grammar fragments, garbage strings, whole completions and
column rows (zero image sizes, degenerate or junk annotations, NaN, ints too big for a float), and a
seeded generator mixes them into a batch of 100 rows; drawing 100 full rows from hypothesis directly
overruns its data budget. Every registry term scores every batch, so each term sees 100 x 100 =
10,000 generated completions; the test counts them to prove it. Extreme inputs that hypothesis would rarely build (megabyte
answers, thousands of boxes) are checked explicitly below.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewards import REWARDS, get_reward
from rewards._columns import as_numbers4, usable
from zoomin.boxes import box_problem
from zoomin.protocol import ProtocolConfig

P = ProtocolConfig()
TERMS = {name: get_reward(name) for name in REWARDS}
BATCH, EXAMPLES = 100, 100

PLAIN_BOX = st.tuples(st.integers(0, 900), st.integers(0, 900), st.integers(1, 400), st.integers(1, 400)).map(
    lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]]
)
NUMBER_TEXT = st.one_of(
    st.integers(-(10**9), 10**9).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e309", "-0", "0000012", "9" * 40, "١٢٣", "３", "nan", "", "1.5.2", "0x10"]),
)
BOX_TEXT = st.one_of(
    PLAIN_BOX.map(lambda b: str(b).replace(" ", "")),
    st.lists(NUMBER_TEXT, max_size=6).map(lambda xs: "[" + ",".join(xs) + "]"),
)
BOXES_TEXT = st.one_of(
    st.lists(BOX_TEXT, max_size=6).map(lambda bs: "[" + ",".join(bs) + "]"),
    st.integers(0, 3000).map(lambda k: "[" + ",".join(["[1,2,300,400]"] * k) + "]"),
)
WORDS = st.sampled_from(["Region 1", "Region 2", "region 0", "Region 999", "smeared", "warped", "natural",
                         "the", "fur", ".", "\n", " ", "Region", "1"])
TAGS = ["think", "boxes", "verdict"]
FRAGMENT = st.one_of(
    st.sampled_from([f"<{t}>" for t in TAGS] + [f"</{t}>" for t in TAGS] + ["<", ">", "</", "<think", "/>"]),
    st.sampled_from(["real", "fake", "AI-Generated", "authentic", "maybe", ""]),
    st.builds(lambda t, body: f"<{t}>{body}</{t}>", st.sampled_from(TAGS),
              st.one_of(BOXES_TEXT, st.lists(WORDS, max_size=12).map(" ".join), st.sampled_from(["real", "fake"]))),
    BOXES_TEXT,
    st.lists(WORDS, max_size=20).map(" ".join),
    st.text(max_size=30),
    st.sampled_from([
        P.render_locate("Region 1 is smeared.", [[0, 0, 500, 500], [100, 100, 300, 900]], "fake"),
        P.render_locate("clean", [], "real"),
        P.render_examine("Region 1 and Region 2 are smeared.", "fake"),
        P.render_examine("Region 1 shows natural noise.", "real"),
    ]),
)
TEXT = st.lists(FRAGMENT, max_size=6).map("".join)
COMPLETION = st.one_of(
    TEXT,
    TEXT,
    TEXT.map(lambda t: [{"role": "assistant", "content": t}]),
    TEXT.map(lambda t: [{"role": "assistant", "content": [{"type": "text", "text": t}, {"type": "image"}]}]),
    st.sampled_from([None, "", [], [{}], {"content": 5}, 3.5]),
)
NUMBER = st.one_of(
    st.integers(-50, 2000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([True, None, "7", 10**400, -(10**400), 1e308]),
)
JUNK_BOX = st.one_of(st.lists(NUMBER, min_size=4, max_size=4), st.lists(NUMBER, max_size=6), st.sampled_from([None, "box"]))
BOX = st.one_of(PLAIN_BOX, PLAIN_BOX, JUNK_BOX)
BOXES = st.one_of(
    st.lists(PLAIN_BOX, min_size=1, max_size=4),
    st.lists(BOX, max_size=5),
    st.sampled_from([None, "boxes", []]),
)
SIZE = st.one_of(
    st.sampled_from([[1000, 1000], [640, 480], [1288, 952]]),
    st.tuples(st.integers(1, 4000), st.integers(1, 4000)).map(list),
    st.sampled_from([[0, 0], [0, 100], [-5, 10], [1, 1], [1e308, 1e308], [1e-300, 5], None, "640x480", [640],
                     [math.nan, 480], [math.inf, 480], [True, 4], [10**400, 3]]),
)
COLUMNS = st.fixed_dictionaries({
    "label": st.sampled_from(["real", "fake", "real", "fake", "Fake", None]),
    "boxes": BOXES,
    "explanation": st.one_of(st.lists(WORDS, min_size=1, max_size=20).map(" ".join), st.text(max_size=60), st.none()),
    "image_size": SIZE,
    "coord_frame": SIZE,
    "region_boxes": BOXES,
    "crop_windows": BOXES,
})


def batch(rng: random.Random, fragments: list[str], completions: list, column_rows: list[dict]) -> tuple[list, dict]:
    """BATCH rows: each completion joins a few hypothesis fragments (or is a hypothesis completion),
    each column value comes from one of the hypothesis column rows, chosen per column."""
    def completion() -> object:
        if rng.random() < 0.3:
            return rng.choice(completions)
        text = "".join(rng.choice(fragments) for _ in range(rng.randint(0, 6)))
        form = rng.randrange(4)
        if form == 0:
            return [{"role": "assistant", "content": text}]
        if form == 1:
            return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]
        return text

    texts = [completion() for _ in range(BATCH)]
    columns = {k: [rng.choice(column_rows)[k] for _ in range(BATCH)] for k in column_rows[0]}
    columns["locate_completions"] = [completion() for _ in range(BATCH)]
    return texts, columns


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_no_term_raises_or_returns_nan_on_generated_batches():
    seen = dict.fromkeys(TERMS, 0)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(
        fragments=st.lists(FRAGMENT, min_size=1, max_size=16),
        completions=st.lists(COMPLETION, min_size=1, max_size=4),
        column_rows=st.lists(COLUMNS, min_size=1, max_size=4),
        seed=st.integers(0, 2**32 - 1),
    )
    def check(fragments, completions, column_rows, seed):
        texts, columns = batch(random.Random(seed), fragments, completions, column_rows)
        for name, term in TERMS.items():
            scores = term(texts, **columns)
            assert len(scores) == BATCH
            for s in scores:
                assert s is None or (type(s) is float and 0.0 <= s <= 1.0), (name, s)
            seen[name] += BATCH

    check()
    assert min(seen.values()) >= 10_000, seen


WELL_FORMED = st.sampled_from([
    P.render_locate("Region 1 is smeared.", [[0, 0, 500, 500]], "fake"),
    P.render_locate("clean", [], "real"),
    P.render_locate("junk", [[500, 500, 400, 400], [1, 2, 3, 4]], "fake"),
    P.render_examine("Region 1 is smeared.", "fake"),
    P.render_examine("Region 1 shows natural texture without any blur.", "real"),
])
PROMPT_COLUMNS = ("label", "boxes", "explanation", "image_size", "coord_frame")


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("joint", [False, True], ids=["examine stage", "joint stage"])
def test_none_depends_only_on_the_prompt(joint):
    """TRL sums the weighted terms with nansum, so a None counts as 0 in its completion's reward: it must
    be the same for every completion of a group. Each group here shares the prompt's columns and varies
    what comes from the completions: the answers and, in the joint stage, the locate answer and the
    region columns made of it (in the examine stage the region columns are the prompt's)."""
    member = st.tuples(st.one_of(COMPLETION, WELL_FORMED), st.one_of(COMPLETION, WELL_FORMED), BOXES, BOXES)

    @settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(prompt=COLUMNS, members=st.lists(member, min_size=8, max_size=8))
    def check(prompt, members):
        n = len(members)
        columns = {k: [prompt[k]] * n for k in PROMPT_COLUMNS}
        if joint:
            for i, key in enumerate(("locate_completions", "region_boxes", "crop_windows"), start=1):
                columns[key] = [m[i] for m in members]
        else:
            columns.update(region_boxes=[prompt["region_boxes"]] * n, crop_windows=[prompt["crop_windows"]] * n)
        for name, term in TERMS.items():
            values = term([m[0] for m in members], **columns)
            assert len({v is None for v in values}) == 1, (name, values)

    check()


HUGE = 1_000_000
EXTREME = {
    "megabyte think": "<think>" + "Region 1 smeared. " * (HUGE // 18) + "</think><verdict>fake</verdict>",
    "megabyte of spaces in boxes": "<think>x</think><boxes>[[1,2,3,4]" + " " * HUGE + "</boxes><verdict>fake</verdict>",
    "megabyte of digits": "<boxes>[[" + "9" * HUGE + ",1,2,3]]</boxes>",
    "thousands of boxes": "<think>x</think><boxes>[" + ",".join(["[1,2,300,400]"] * 5000) + "]</boxes><verdict>fake</verdict>",
    "deeply nested tags": "<think>" * 10_000 + "x" + "</think>" * 10_000 + "<verdict>fake</verdict>",
    "thousands of citations": "<think>" + " ".join(f"Region {i}" for i in range(20_000)) + "</think><verdict>real</verdict>",
    "megabyte punctuation": "<think>" + "!" * HUGE + "</think><verdict>fake</verdict>",
    "non-ASCII digits": "<think>x</think><boxes>[[١,٢,٣٠٠,٤٠٠]]</boxes><verdict>fake</verdict>",
    "huge and inverted numbers": "<think>x</think><boxes>[[9999999,-9999999,-5,1e9],[400,300,2,1]]</boxes><verdict>fake</verdict>",
    "NUL and surrogates": "<think>\x00\ud800Region 1</think><verdict>fake\x00</verdict>",
}


@pytest.mark.parametrize("text", list(EXTREME.values()), ids=list(EXTREME))
def test_extreme_answers_are_scored(text):
    columns = {
        "label": ["fake"], "boxes": [[[0, 0, 10, 10]]], "explanation": ["Region 1 is smeared."],
        "image_size": [[640, 480]], "coord_frame": [[1000, 1000]],
        "region_boxes": [[[0, 0, 500, 500]]], "crop_windows": [[[0, 0, 320, 240]]],
    }
    for name, term in TERMS.items():
        [score] = term([text], **columns)
        assert score is None or 0.0 <= score <= 1.0, (name, score)


@settings(max_examples=500, deadline=None)
@given(JUNK_BOX)
def test_usable_agrees_with_box_problem(box):
    numbers = as_numbers4(box)
    if numbers is not None:
        x1, y1, x2, y2 = numbers
        assert usable(numbers) == (box_problem(numbers) is None and math.isfinite((x2 - x1) * (y2 - y1)))
