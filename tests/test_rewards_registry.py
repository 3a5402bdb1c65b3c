"""Registry, dotted-path terms, build_rewards, pickling, import hygiene and the documented example."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rewards import DEFAULT_REWARDS, REWARDS, build_rewards, get_reward
from zoomin.protocol import ProtocolConfig

ROOT = Path(__file__).resolve().parents[1]
ROW = {
    "label": "fake",
    "boxes": [[0, 0, 10, 10]],
    "explanation": "Region 1 shows smeared fur.",
    "image_size": [100, 100],
    "coord_frame": [1000, 1000],
    "region_boxes": [[0, 0, 100, 100]],
    "crop_windows": [[0, 0, 28, 28]],
}
ANSWERS = [
    "<think>Region 1 shows smeared fur.</think>\n<boxes>[[0,0,100,100]]</boxes>\n<verdict>fake</verdict>",
    "<think>Region 1 shows smeared fur.</think>\n<verdict>fake</verdict>",
    "garbage",
]


def columns(n: int) -> dict:
    return {k: [v] * n for k, v in ROW.items()}


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_every_registry_term_is_named_picklable_and_deterministic(name):
    term = get_reward(name)
    assert term.__name__ == name
    scores = term(ANSWERS, **columns(len(ANSWERS)))
    clone = pickle.loads(pickle.dumps(term))
    assert clone.__name__ == name
    assert clone(ANSWERS, **columns(len(ANSWERS))) == scores


def test_default_sets_build_for_every_stage():
    assert set(DEFAULT_REWARDS) == {"locate", "examine", "joint"}
    assert "verdict" not in DEFAULT_REWARDS["locate"] and "verdict_locate" not in DEFAULT_REWARDS["locate"]
    for names in DEFAULT_REWARDS.values():
        funcs, weights = build_rewards(names)
        assert [f.__name__ for f in funcs] == names and weights == [1.0] * len(names)


def test_unknown_names_and_bad_parameters():
    with pytest.raises(ValueError, match=r"unknown reward 'box_iuo'.*box_iou.*zoom_consistency"):
        get_reward("box_iuo")
    with pytest.raises(ValueError, match="bad parameters for reward 'verdict'"):
        get_reward("verdict", colour="red")
    with pytest.raises(ValueError, match="must be a string"):
        get_reward(None)


def test_name_parameter_renames_a_term():
    term = get_reward("verdict", name="verdict_weighted", class_weights={"real": 2.0})
    assert term.__name__ == "verdict_weighted"


def test_build_rewards_checks_its_arguments():
    with pytest.raises(ValueError, match="got 2 reward weights for 3 rewards"):
        build_rewards(["verdict", "bleu2", "format_examine"], weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="finite number"):
        build_rewards(["verdict"], weights=[float("nan")])
    with pytest.raises(ValueError, match="not among the rewards"):
        build_rewards(["verdict"], params={"bleu": {}})
    with pytest.raises(ValueError, match="distinct names"):
        build_rewards(["verdict", "verdict"])
    with pytest.raises(ValueError, match="non-empty list"):
        build_rewards("verdict")
    with pytest.raises(ValueError, match="list of 2 mappings"):
        build_rewards(["verdict", "bleu2"], params=[{}])
    # One term twice with different parameters: params by position.
    funcs, weights = build_rewards(
        ["verdict", "verdict"], weights=[1, 0.5], params=[None, {"name": "verdict_real2", "class_weights": {"real": 2}}]
    )
    assert [f.__name__ for f in funcs] == ["verdict", "verdict_real2"] and weights == [1.0, 0.5]
    assert funcs[1](["<think>x</think><verdict>real</verdict>"], label=["real"]) == [2.0]


def test_protocol_reaches_every_term():
    protocol = ProtocolConfig(verdict_tag="answer")
    funcs, _ = build_rewards(["verdict", "format_examine"], protocol=protocol)
    assert all(f.protocol is protocol for f in funcs)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """An importable module ``user_terms`` with a function, a factory class and a ready-made instance."""
    (tmp_path / "user_terms.py").write_text(textwrap.dedent('''
        class Constant:
            def __init__(self, value=1.0, protocol=None):
                self.value, self.protocol, self.__name__ = value, protocol, "constant"
            def __call__(self, completions, **columns):
                return [self.value] * len(completions)

        class NoProtocol:
            def __init__(self, value=2.0):
                self.value = value
            def __call__(self, completions, **columns):
                return [self.value] * len(completions)

        def always_half(completions, **columns):
            return [0.5] * len(completions)

        ready = Constant(3.0)
        not_callable = 5
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "user_terms"
    sys.modules.pop("user_terms", None)


def test_dotted_paths(user_module):
    protocol = ProtocolConfig()
    assert get_reward(f"{user_module}:always_half")(["a", "b"]) == [0.5, 0.5]
    assert get_reward(f"{user_module}.always_half")(["a"]) == [0.5]
    built = get_reward(f"{user_module}:Constant", protocol=protocol, value=0.25)
    assert built(["a"]) == [0.25] and built.protocol is protocol and built.__name__ == "constant"
    assert get_reward(f"{user_module}:NoProtocol", value=4.0)(["a"]) == [4.0]
    assert get_reward(f"{user_module}:ready")(["a"]) == [3.0]
    with pytest.raises(ValueError, match="takes no parameters"):
        get_reward(f"{user_module}:always_half", value=1)
    with pytest.raises(ValueError, match="bad parameters"):
        get_reward(f"{user_module}:NoProtocol", colour=1)
    with pytest.raises(ValueError, match="not callable"):
        get_reward(f"{user_module}:not_callable")
    with pytest.raises(ValueError, match="has no attribute 'missing'"):
        get_reward(f"{user_module}:missing")
    with pytest.raises(ValueError, match="cannot import module 'no_such_module_xyz'"):
        get_reward("no_such_module_xyz:term")
    with pytest.raises(ValueError, match="must look like"):
        get_reward(":term")


def doc_block(marker: str) -> str:
    """The fenced code block that follows ``<!-- example: marker -->`` in docs/rewards.md."""
    doc = (ROOT / "docs" / "rewards.md").read_text()
    match = re.search(rf"<!-- example: {re.escape(marker)} -->\s*```python\n(.*?)```", doc, re.DOTALL)
    assert match, f"docs/rewards.md lost its '{marker}' example block"
    return match.group(1)


def test_documented_example_runs(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(doc_block("my_rewards.py"))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        exec(compile(doc_block("usage"), "docs/rewards.md:usage", "exec"), {})
    finally:
        sys.modules.pop("my_rewards", None)


def test_documented_strict_measurement_runs():
    exec(compile(doc_block("strict"), "docs/rewards.md:strict", "exec"), {})


def test_rewards_imports_no_trainer_and_fast_terms_no_torchmetrics():
    # A fresh interpreter: importing rewards and running every term except the explanation ones must
    # load neither the training side nor torch/torchmetrics.
    code = textwrap.dedent(f'''
        import sys
        from rewards import REWARDS, get_reward
        row = {ROW!r}
        for name in REWARDS:
            if name not in ("bleu2", "rouge_l"):
                get_reward(name)(["<think>x</think><verdict>fake</verdict>"], **{{k: [v] for k, v in row.items()}})
        loaded = [m for m in ("rl", "trl", "transformers", "torchmetrics", "torch") if m in sys.modules]
        assert not loaded, loaded
    ''')
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
