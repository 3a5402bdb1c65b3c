"""Multi-process training on the CPU (gloo) with the launch files users use: accelerate configs,
the plain torchrun path, and the commands the SLURM script prints.

Each launch costs 20-40 s on a 2-core machine, most of it imports in both processes (the first
DeepSpeed launch on a machine also compiles DeepSpeed's shared-memory op: about 2 minutes more).
The tests share one data set and one tiny model, and run 2 steps with 16-token completions.
The rollout tests launch tests/distributed_probe.py, which records what the reward functions received.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForImageTextToText

from rl.checkpoints import is_complete, last_complete_checkpoint
from rl.cli import main as cli
from rl.distributed import prepare_distributed
from rl.trainer import share_prompts
from zoomin.synth import synthesize

pytestmark = pytest.mark.distributed

REPO = Path(__file__).resolve().parents[1]
SBATCH = REPO / "launch" / "slurm" / "zoomin.sbatch"
PROBE = REPO / "tests" / "distributed_probe.py"
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
COMMON = ["--attn_implementation", "eager", "--bf16", "false", "--report_to", "none", "--logging_steps", "1",
          "--per_device_train_batch_size", "2", "--max_records", "8", "--seed", "0", "--max_steps", "2",
          "--save_strategy", "steps", "--save_steps", "2"]
GRPO = ["--stage", "locate", *COMMON, "--num_generations", "4", "--max_completion_length", "16",
        "--learning_rate", "1e-4"]
# Sequential order, so that one process with 2 accumulation steps sees the same micro-batches as 2 processes.
SFT = [*COMMON, "--learning_rate", "1e-3", "--train_sampling_strategy", "sequential"]
LAUNCH_TIMEOUT_S = 600  # generous: a launch takes under a minute, plus about 2 once for DeepSpeed's op build
FAIL_FAST_S = 60  # a killed rank ends the whole launch within this (measured: about 1 s); launch/README.md
LOSS_RTOL = 1e-5  # 2 processes vs 1 process with 2 accumulation steps: float summation order only


@pytest.fixture(scope="module")
def base(tiny_vlm, tmp_path_factory) -> list[str]:
    data = tmp_path_factory.mktemp("magnifake")
    synthesize(data, n=20, seed=1)
    return ["--model_name_or_path", str(tiny_vlm()), "--train_data", str(data / "train.jsonl")]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread per process on a 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accelerate(config: str, stage: str, *args: str) -> list[str]:
    return [*ACCELERATE, "--config_file", f"launch/accelerate/{config}.yaml", "--num_processes", "2",
            "--main_process_port", str(_free_port()), "-m", "rl.cli", stage, *args]


def _run(command: list[str], **env: str) -> None:
    done = subprocess.run(command, cwd=REPO, env={**_env(), **env}, capture_output=True, text=True,
                          timeout=LAUNCH_TIMEOUT_S)
    assert done.returncode == 0, f"{shlex.join(command)}\n{done.stdout[-2000:]}\n{done.stderr[-6000:]}"


def _logs(out: Path) -> list[dict]:
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    return [entry for entry in state["log_history"] if "loss" in entry]


def _assert_finished(out: Path, deepspeed: bool) -> None:
    """Both steps ran, the step-2 checkpoint is complete (for DeepSpeed: both ranks' shards), and the
    final folder loads as a model."""
    assert len(_logs(out)) == 2
    checkpoint = out / "checkpoint-2"
    assert is_complete(checkpoint)
    if deepspeed:
        shards = (checkpoint / "global_step2").glob("*zero_pp_rank_*_optim_states.pt")
        assert sorted(p.name.split("zero_pp_rank_")[1].split("_")[0] for p in shards) == ["0", "1"]
    AutoModelForImageTextToText.from_pretrained(out)


def _assert_full_weights(out: Path, base_model: Path) -> None:
    """A ZeRO-3 output holds the whole trained model under the base checkpoint's tensor names: the same
    names and shapes as the base, and the values DeepSpeed's own consolidation of the last checkpoint's
    shards gives (so not the empty placeholders ZeRO-3 leaves in each rank's module)."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    def tensors(folder: Path) -> dict[str, tuple[int, ...]]:
        with safe_open(folder / "model.safetensors", "pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118

    assert tensors(out) == tensors(base_model)
    model = AutoModelForImageTextToText.from_pretrained(out)
    step = json.loads((out / "trainer_state.json").read_text())["global_step"]
    consolidated = get_fp32_state_dict_from_zero_checkpoint(str(out / f"checkpoint-{step}"))
    saved = model.state_dict()
    assert consolidated.keys() <= saved.keys()
    for name, value in consolidated.items():
        torch.testing.assert_close(saved[name], value, rtol=0, atol=0, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("config", ["ddp", "zero2"])
def test_grpo_two_processes(base, tmp_path, config):
    out = tmp_path / "out"
    _run(_accelerate(config, "grpo", *base, *GRPO, "--output_dir", str(out)))
    _assert_finished(out, deepspeed=config != "ddp")
    assert {"rewards/format_locate/mean", "rewards/box_iou/mean"} <= _logs(out)[0].keys()


def _probe(config: str, *args: str) -> list[str]:
    """Launch 2 processes of ``zoomin`` through tests/distributed_probe.py."""
    return [*ACCELERATE, "--config_file", f"launch/accelerate/{config}.yaml", "--num_processes", "2",
            "--main_process_port", str(_free_port()), str(PROBE), *args]


def _seen(probe_dir: Path) -> dict[int, list[dict]]:
    """What each process's reward functions received (tests/distributed_probe.py), by process."""
    return {int(f.stem.split("-")[1]): [json.loads(line) for line in f.read_text().splitlines()]
            for f in sorted(probe_dir.glob("rank-*.jsonl"))}


@pytest.mark.slow
def test_policy_crops_are_drawn_once_per_group_across_processes(base, tmp_path):
    """TRL's own layout: 3 prompts per process in groups of 2 (process 0 holds a a b, process 1 b c c), so
    group b crosses processes. Every member of every group is shown the crops of the same locate answer."""
    out, probe = tmp_path / "out", tmp_path / "probe"
    probe.mkdir()
    _run(_probe("ddp", "grpo", *base, *GRPO, "--stage", "examine", "--crop_source", "policy", "--num_generations",
                "2", "--per_device_train_batch_size", "3", "--rewards", "verdict", "distributed_probe:seen",
                "--output_dir", str(out)), ZOOMIN_PROBE_DIR=str(probe))
    assert len(_logs(out)) == 2
    seen = _seen(probe)
    assert sorted(seen) == [0, 1]
    answers: dict[tuple[int, str], set[tuple[str, str]]] = {}
    ranks: dict[tuple[int, str], set[int]] = {}
    for rank, rows in seen.items():
        for row in rows:
            group = (row["step"], row["id"])
            answers.setdefault(group, set()).add((row["locate"], json.dumps(row["regions"])))
            ranks.setdefault(group, set()).add(rank)
    assert all(len(shown) == 1 for shown in answers.values()), answers
    assert sum(len(r) == 2 for r in ranks.values()) == 2  # one crossing group per step


@pytest.mark.slow
def test_joint_steps_with_uneven_crops_between_processes_and_gathered_metrics(base, tmp_path):
    """One group of 4 over 2 processes whose locate answers name 2 boxes (process 0) and none (process 1):
    the steps complete, and the zoom metrics are means over both processes, not process 0's."""
    out, probe = tmp_path / "out", tmp_path / "probe"
    probe.mkdir()
    _run(_probe("ddp", "grpo", *base, *GRPO, "--stage", "joint", "--protocol", '{"examine_in_context": true}',
                "--rewards", "format_locate", "verdict", "distributed_probe:seen", "--output_dir", str(out)),
         ZOOMIN_PROBE_DIR=str(probe), ZOOMIN_PROBE_BOXES="2,0")
    logs = _logs(out)
    assert len(logs) == 2
    seen = _seen(probe)
    assert {len(row["regions"]) for row in seen[0]} == {2} and {len(row["regions"]) for row in seen[1]} == {0}
    for log in logs:
        assert log["zoom/mean_regions"] == 1.0
        assert log["completions/examine_mean_length"] > 0
        assert log["rewards/format_locate/mean"] == 1.0  # the locate terms read the scripted answers


@pytest.mark.slow
def test_grpo_zero3_with_reference_model_on_two_simulated_nodes(base, tiny_vlm, tmp_path):
    """The commands the SLURM script prints for a 2-node job, run as two launchers on 127.0.0.1 with
    machine ranks 0 and 1 (one process each): ZeRO-3 with a reference model (beta > 0)."""
    out = tmp_path / "out"
    printed = subprocess.run(
        ["bash", str(SBATCH), "--dry-run", "--nodelist", "127.0.0.1,127.0.0.1", "--gpus-per-node", "1",
         "--port", str(_free_port()), "--accelerate-config", "launch/accelerate/zero3.yaml",
         "grpo", *base, *GRPO, "--beta", "0.04", "--output_dir", str(out)],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    env = {**_env(), **dict(item.split("=", 1) for item in printed[0].removeprefix("export ").split())}
    commands = [shlex.split(line) for line in printed[1:] if not line.startswith("#")]
    assert len(commands) == 2 and all(command[:2] == ["accelerate", "launch"] for command in commands)
    nodes = [subprocess.Popen([*ACCELERATE, *command[2:]], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for command in commands]  # with this Python
    outputs = [node.communicate(timeout=LAUNCH_TIMEOUT_S)[0] for node in nodes]
    for node, output in zip(nodes, outputs):
        assert node.returncode == 0, output[-6000:]
    _assert_finished(out, deepspeed=True)
    assert "kl" in _logs(out)[0]  # the reference model took part
    _assert_full_weights(out, tiny_vlm())


@pytest.mark.slow
def test_sft_ddp_loss_matches_one_process(base, tmp_path):
    """2 processes x 2 examples give the losses (and gradient norms) of 1 process x 2 examples x 2
    accumulation steps. Not those of 1 process x 4 examples: Qwen2.5-VL does not take the batch's
    token count (accepts_loss_kwargs is False), so each rank, like each accumulation step,
    averages over its own tokens and the ranks' means are averaged."""
    two, one = tmp_path / "two", tmp_path / "one"
    _run(_accelerate("ddp", "sft", *base, *SFT, "--output_dir", str(two)))
    _assert_finished(two, deepspeed=False)
    assert cli(["sft", *base, *SFT, "--gradient_accumulation_steps", "2", "--output_dir", str(one)]) == 0
    for multi, single in zip(_logs(two), _logs(one)):
        assert multi["loss"] == pytest.approx(single["loss"], rel=LOSS_RTOL)
        assert multi["grad_norm"] == pytest.approx(single["grad_norm"], rel=10 * LOSS_RTOL)


@pytest.mark.slow
def test_sft_zero2_with_plain_torchrun(base, tmp_path):
    """The path for clusters without SLURM or accelerate: torchrun with the DeepSpeed JSON."""
    out = tmp_path / "out"
    _run([*TORCHRUN, "--nproc_per_node", "2", "--master_port", str(_free_port()), "-m", "rl.cli", "sft", *base,
          *SFT, "--deepspeed", "launch/deepspeed/zero2.json", "--output_dir", str(out)])
    _assert_finished(out, deepspeed=True)


def _workers(launcher: psutil.Process) -> dict[int, psutil.Process]:
    """The training processes under a launcher, by global rank."""
    found = {}
    for child in launcher.children(recursive=True):
        try:
            env = child.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "RANK" in env and "rl.cli" in child.cmdline():
            found[int(env["RANK"])] = child
    return found


@pytest.mark.slow
def test_sft_zero3_dead_rank_fails_fast_and_the_run_resumes(base, tiny_vlm, tmp_path):
    """SIGKILL one of two ZeRO-3 ranks mid-run: the launcher exits non-zero within FAIL_FAST_S and takes
    the other rank with it; a new launch resumes from the last complete checkpoint and saves the full model."""
    killed, resumed = tmp_path / "killed", tmp_path / "resumed"
    args = [*base, *SFT, "--max_steps", "50", "--save_steps", "1"]
    launcher = subprocess.Popen(_accelerate("zero3", "sft", *args, "--output_dir", str(killed)), cwd=REPO, env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    while last_complete_checkpoint(killed) is None and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = _workers(psutil.Process(launcher.pid))
    assert launcher.poll() is None and sorted(workers) == [0, 1], "the run ended before a rank could be killed"
    workers[1].send_signal(signal.SIGKILL)
    code = launcher.wait(timeout=FAIL_FAST_S)  # a hang past the stated bound fails the test (TimeoutExpired)
    assert code != 0
    assert not workers[0].is_running() or workers[0].status() == psutil.STATUS_ZOMBIE

    checkpoint = last_complete_checkpoint(killed)
    step = int(checkpoint.name.split("-")[1])
    assert step < 50
    _run(_accelerate("zero3", "sft", *args, "--max_steps", str(step + 1), "--resume_from_checkpoint", str(checkpoint),
                     "--output_dir", str(resumed)))
    assert json.loads((resumed / "trainer_state.json").read_text())["global_step"] == step + 1
    _assert_full_weights(resumed, tiny_vlm())


def test_policy_crop_prompts_are_shared_once_each_on_a_process_that_holds_them():
    # TRL's diagram: process 0 holds a a b, process 1 b c c; only its holders can locate a prompt
    assert share_prompts([["a", "b"], ["b", "c"]]) == [["a", "b"], ["c"]]
    assert share_prompts([["a", "b"], ["b", "c"], ["c", "d"], ["d", "a"]]) == [["a"], ["b"], ["c"], ["d"]]
    assert share_prompts([["a"], ["a"]]) == [["a"], []]  # the second process pads with a copy of its own
    assert share_prompts([["b", "a", "c"]]) == [["b", "a", "c"]]  # one process: every distinct prompt, in order


def test_prepare_distributed_runs_processes_without_accelerators_on_the_cpu(monkeypatch):
    monkeypatch.setattr("rl.distributed._has_accelerator", lambda: False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert prepare_distributed(["--config", "r.yaml", "--use_cpu", "false"])[-2:] == ["--use_cpu", "true"]
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert prepare_distributed(["--config", "r.yaml"]) == ["--config", "r.yaml"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr("rl.distributed._has_accelerator", lambda: True)
    assert prepare_distributed(["--config", "r.yaml"]) == ["--config", "r.yaml"]


def test_launch_readme_shows_what_memory_table_prints():
    spec = importlib.util.spec_from_file_location("memory_table", REPO / "launch" / "memory_table.py")
    memory_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(memory_table)
    assert memory_table.table() in (REPO / "launch" / "README.md").read_text()


def _dry_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SBATCH), "--dry-run", *args], cwd=REPO, capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if not k.startswith("SLURM_")})


def test_sbatch_script_parses_and_prints_per_node_commands():
    assert subprocess.run(["bash", "-n", str(SBATCH)]).returncode == 0
    recipe = "recipes/qwen2_5_vl_32b/grpo_locate.yaml"
    done = _dry_run("--nodelist", "gpu1,gpu2", "--gpus-per-node", "8", "--port", "29555",
                    "--accelerate-config", "launch/accelerate/zero3.yaml", "grpo", "--config", recipe)
    assert done.returncode == 0, done.stderr
    commands = [shlex.split(line) for line in done.stdout.splitlines() if not line.startswith(("#", "export"))]
    assert len(commands) == 2
    for rank, command in enumerate(commands):
        options = dict(zip(command[2::2], command[3::2]))  # after `accelerate launch`, up to -m
        assert command[:2] == ["accelerate", "launch"] and options["--machine_rank"] == str(rank)
        assert options["--main_process_ip"] == "gpu1" and options["--main_process_port"] == "29555"
        assert options["--num_machines"] == "2" and options["--num_processes"] == "16"
        assert options["--deepspeed_multinode_launcher"] == "standard"
        assert command[command.index("-m"):][:5] == ["-m", "rl.cli", "grpo", "--config", recipe]
    assert "TORCH_NCCL_ASYNC_ERROR_HANDLING=1" in done.stdout

    # With a generation node: the last node serves the recipe's model, the others train against it.
    done = _dry_run("--nodes", "3", "--gpus-per-node", "4", "--vllm-node",
                    "--accelerate-config", "launch/accelerate/zero3.yaml", "grpo", "--config", recipe)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if not line.startswith(("#", "export"))]
    train, serve = [shlex.split(line) for line in lines[:-1]], shlex.split(lines[-1])
    assert len(train) == 2 and serve[:2] == ["trl", "vllm-serve"]
    assert serve[serve.index("--model") + 1] == "runs/qwen2_5_vl_32b/sft"
    for command in train:
        assert command[command.index("--num_processes") + 1] == "8"
        assert command[command.index("--vllm_server_host") + 1] == "node2"
        assert command[command.index("--vllm_mode") + 1] == "server"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "2", "grpo"], "--accelerate-config is required"),
        (["--nodes", "2", "--accelerate-config", "launch/accelerate/zero3.yaml"], "missing the stage"),
        (["--nodes", "2", "--accelerate-config", "nope.yaml", "sft"], "no such accelerate config"),
        (["--nodes", "2", "--accelerate-config", "launch/accelerate/ddp.yaml", "sft", "--config", "nope.yaml"],
         "no such recipe"),
        (["--nodes", "2", "--vllm-node", "--accelerate-config", "launch/accelerate/ddp.yaml", "sft"], "GRPO"),
        (["--nodes", "1", "--vllm-node", "--accelerate-config", "launch/accelerate/ddp.yaml", "grpo"],
         "at least 2 nodes"),
        (["--accelerate-config", "launch/accelerate/ddp.yaml", "sft"], "needs --nodes or --nodelist"),
        (["--nodes", "two", "--accelerate-config", "launch/accelerate/ddp.yaml", "sft"], "positive integer"),
    ],
)
def test_sbatch_script_rejects_bad_arguments_before_starting_anything(args, message):
    done = _dry_run(*args)
    assert done.returncode == 2 and message in done.stderr and not done.stdout
