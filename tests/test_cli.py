"""The command line answers user mistakes with one line and a non-zero exit, never a traceback."""

import pytest

from rl.cli import main


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["tiny", "--family", "llava", "--out", "x"], "llava"),
        (["tiny", "--family", "qwen3_vl", "--out", "x", "--max-image-tokens", "2"], "max_image_tokens"),
        (["data", "synth", "--out", "x", "--n", "1"], "n"),
        (["eval", "--checkpoint", "/no/such/dir", "--data", "/no/such.jsonl"], "no such"),
        (["export", "--from", "/no/such/run", "--out", "x"], "no such training folder"),
        (["export", "--from", ".", "--out", "x", "--metrics", "/no/such.json"], "no such file"),
        (["app", "--checkpoint", "/no/such/dir"], "no such file or folder"),
        (["app", "--checkpoint", "."], "is not a ZoomIn checkpoint"),
        (["grpo", "--model_name_or_path", "/no/such/model", "--train_data", "/no/such.jsonl", "--use_cpu", "true",
          "--bf16", "false"], "train_data: no such file"),
    ],
)
def test_user_errors_are_one_line(argv, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and fragment in err


def test_missing_argument_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tiny", "--family", "qwen2_vl"])
    assert exit_info.value.code == 2 and "--out" in capsys.readouterr().err


def test_synth_then_validate(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path), "--n", "6", "--seed", "4"]) == 0
    assert main(["data", "validate", str(tmp_path / "train.jsonl")]) == 0
    assert "0 bad" in capsys.readouterr().out


def test_synth_zoom_needed_is_the_demo_set(tmp_path, capsys):
    from zoomin.synth import synthesize_zoom_needed

    assert main(["data", "synth", "--zoom-needed", "--out", str(tmp_path / "cli"), "--n", "6", "--seed", "4",
                 "--side", "112"]) == 0
    synthesize_zoom_needed(tmp_path / "direct", n=6, seed=4, side=112)
    for name in ("train.jsonl", "test.jsonl"):
        assert (tmp_path / "cli" / name).read_text() == (tmp_path / "direct" / name).read_text()
    assert main(["data", "validate", str(tmp_path / "cli" / "train.jsonl")]) == 0
    assert "zoom-needed" in capsys.readouterr().out


def test_tiny_builds_the_demos_model(tmp_path, capsys):
    """`zoomin tiny` with the demo's global view gives the demo's processor: 16 merged tokens per image."""
    from transformers import AutoProcessor

    from rl.demo import FAMILY, GLOBAL_TOKENS

    out = tmp_path / "small"
    assert main(["tiny", "--family", FAMILY, "--size", "small", "--out", str(out),
                 "--max-image-tokens", str(GLOBAL_TOKENS)]) == 0
    image_processor = AutoProcessor.from_pretrained(out).image_processor
    factor = image_processor.patch_size * image_processor.merge_size
    assert image_processor.size["longest_edge"] == GLOBAL_TOKENS * factor**2
