"""The per-batch decode memo: the terms of one batch parse each completion once, and no batch ever
reads a view decoded from other objects or under another protocol."""

from __future__ import annotations

from dataclasses import dataclass

from rewards import build_rewards, get_reward
from rewards._decode import MAX_VIEWS, MEMO, clear_cache
from zoomin.protocol import Parsed, ProtocolConfig, Stage


@dataclass
class CountingProtocol(ProtocolConfig):
    """The real protocol, counting how often it parses."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.calls = 0

    def parse(self, text: object, stage: Stage) -> Parsed:
        self.calls += 1
        return super().parse(text, stage)


P = ProtocolConfig()


def batch(n: int) -> dict[str, list]:
    """``n`` locate rows of a 100x100 image in its own pixel frame, every box on its annotation."""
    answer = P.render_locate("hands", [[10, 10, 50, 50]], "fake")
    return {
        "completions": [answer] * n,
        "label": ["fake"] * n,
        "boxes": [[[10, 10, 50, 50]]] * n,
        "image_size": [[100, 100]] * n,
        "coord_frame": [[100, 100]] * n,
    }


def test_terms_of_one_batch_parse_each_completion_once():
    protocol = CountingProtocol()
    funcs, _ = build_rewards(["format_locate", "box_iou", "box_f1", "verdict_locate"], protocol=protocol)
    columns = batch(5)
    clear_cache()
    scores = [f(**columns) for f in funcs]  # as TRL calls them: one after another, the same objects
    assert scores == [[1.0] * 5] * 4
    assert protocol.calls == 5
    next_batch = batch(5)  # new objects, equal values: decoded afresh
    assert [f(**next_batch) for f in funcs] == scores and protocol.calls == 10


def test_a_rebuilt_column_is_read_afresh():
    term = get_reward("box_iou")
    columns = batch(2)
    assert term(**columns) == [1.0, 1.0]
    # The same completions, but one row's annotation replaced (TRL's next batch may reuse texts).
    columns["boxes"] = [[[60, 60, 100, 100]], columns["boxes"][1]]
    assert term(**columns) == [0.0, 1.0]


def test_equal_values_are_not_the_same_rows():
    # [1, 1] == [True, True], yet a bool is no image side: the second call must not reuse the first's view.
    term = get_reward("box_iou")
    columns = {"completions": [P.render_locate("x", [[0, 0, 1, 1]], "fake")], "label": ["fake"],
               "boxes": [[[0, 0, 1, 1]]], "image_size": [[1, 1]], "coord_frame": [[1, 1]]}
    assert term(**columns) == [1.0]
    columns["image_size"] = [[True, True]]
    assert columns["image_size"] == [[1, 1]] and term(**columns) == [None]


def test_a_protocol_edited_between_batches_decodes_again():
    protocol = ProtocolConfig()
    verdict = get_reward("verdict", protocol=protocol)
    completions, label = ["<think>x</think><answer>fake</answer>"], ["fake"]
    assert verdict(completions, label=label) == [0.0]
    protocol.verdict_tag = "answer"
    assert verdict(completions, label=label) == [1.0]  # the very same list, another fingerprint


def test_the_memo_stays_bounded():
    clear_cache()
    for i in range(3 * MAX_VIEWS):
        get_reward("verdict", protocol=ProtocolConfig(real_word=f"real{i}"))(["x"], label=["fake"])
    assert len(MEMO._views) <= MAX_VIEWS
