"""What the web-app tests and ``tests/screenshot_app.py`` share: a checkpoint that gives real answers,
the app served by ``zoomin app`` in its own process, and headless Chromium driven by Playwright.

The checkpoint is the demo-size model (``build_tiny_vlm("qwen2_5_vl", "small")``) after a short SFT
(``rl.sft.main``) that overfits two MagniFake-mini fakes: a random-weight model almost never writes an
answer that parses, while this one writes the grammar, boxes and a verdict on any image, as a
trained checkpoint does. It is exported by ``zoomin export`` with an evaluation, examples and a Space.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
"""Flags that let Debian's Chromium run headless as root in a sandbox without network."""
SFT_STEPS = 120
"""Enough for the two overfitted answers to come out whole under greedy decoding (100 did, measured)."""


@dataclass
class AppCheckpoint:
    checkpoint: Path
    data: Path
    eval_json: Path
    fake_image: Path
    """A training image the model learned to answer "fake" with boxes for."""


def build_app_checkpoint(root: Path) -> AppCheckpoint:
    """Train and export the app's checkpoint under ``root`` (about a minute on two cores)."""
    from rl import sft
    from rl.cli import main as cli
    from zoomin.synth import synthesize
    from zoomin.tiny import build_tiny_vlm

    data = root / "data"
    synthesize(data, n=20, seed=0, min_side=112, max_side=112, kinds=("checkerboard",), strength=2.5)
    fakes = [r for r in map(json.loads, (data / "train.jsonl").read_text().splitlines()) if r["label"] == "fake"][:2]
    (data / "few.jsonl").write_text("".join(json.dumps(r) + "\n" for r in fakes))
    model = build_tiny_vlm("qwen2_5_vl", "small", root / "model")
    run = root / "sft"
    sft.main(["--model_name_or_path", str(model), "--train_data", str(data / "few.jsonl"), "--output_dir", str(run),
              "--attn_implementation", "eager", "--dtype", "float32", "--use_cpu", "true", "--bf16", "false",
              "--report_to", "none", "--per_device_train_batch_size", "2", "--learning_rate", "3e-3",
              "--lr_scheduler_type", "constant", "--max_steps", str(SFT_STEPS), "--save_strategy", "no",
              "--logging_steps", "20", "--seed", "0"])
    eval_json = root / "eval.json"
    assert cli(["eval", "--checkpoint", str(run), "--data", str(data / "test.jsonl"), "--out", str(eval_json)]) == 0
    checkpoint = root / "checkpoint"
    assert cli(["export", "--from", str(run), "--out", str(checkpoint), "--metrics", str(eval_json),
                "--dataset", "MagniFake-mini", "--examples", str(data / "test.jsonl"), "--n-examples", "2",
                "--space"]) == 0
    return AppCheckpoint(checkpoint, data, eval_json, data / "images" / f"{fakes[0]['id']}.png")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(command: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None,
           timeout: float = 180.0) -> Iterator[str]:
    """Run a Gradio server ``command`` (it must listen on ``env["GRADIO_SERVER_PORT"]``) and yield its URL
    once the page answers; the process is stopped afterwards. Its output goes to ``log``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    url = f"http://127.0.0.1:{env['GRADIO_SERVER_PORT']}/"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command} did not answer on {url} within {timeout:.0f} s:\n"
                                   f"{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def serve_app(checkpoint: Path, log: Path, *extra: str) -> Iterator[str]:
    """``zoomin app --checkpoint CHECKPOINT`` on 127.0.0.1 and a free port."""
    port = str(free_port())
    command = [sys.executable, "-m", "rl.cli", "app", "--checkpoint", str(checkpoint), "--port", port, *extra]
    with served(command, REPO, log, {"GRADIO_SERVER_PORT": port, "GRADIO_TEMP_DIR": str(log.parent / "gradio")}) as url:
        yield url


@contextlib.contextmanager
def chromium_page(width: int = 1280, height: int = 1000):
    """A Playwright page in a fresh headless Chromium (Debian's, never a downloaded one)."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="zoomin-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=list(CHROMIUM_FLAGS), headless=True,
                viewport={"width": width, "height": height})
            try:
                yield context.pages[0] if context.pages else context.new_page()
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def open_app(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.locator("#detect").wait_for(state="visible", timeout=60_000)


def upload(page, image: Path) -> None:
    """Put ``image`` into the upload field and wait until the page shows it is uploaded."""
    page.locator("#upload input[type=file]").set_input_files(str(image))
    uploaded(page, image.name)


def uploaded(page, name: str) -> None:
    """Wait until the upload field shows the file ``name`` (it writes the stem and the suffix apart)."""
    page.locator("#upload").get_by_text(Path(name).stem).wait_for(timeout=60_000)


def detect(page, timeout_ms: int = 120_000) -> str:
    """Click Detect and return the status text once the answer (or an error) is on the page."""
    status = page.locator("#status")
    page.locator("#detect").click()
    page.wait_for_function(
        "() => /Verdict:|Cannot detect/.test(document.querySelector('#status')?.innerText ?? '')",
        timeout=timeout_ms)
    return status.inner_text()


def screenshot(url: str, image: Path, out: Path) -> str:
    """Open the app at ``url``, detect on ``image`` and save a screenshot of the page to ``out``."""
    with chromium_page(width=1280, height=1200) as page:
        open_app(page, url)
        upload(page, image)
        text = detect(page)
        page.locator("#located img").wait_for()
        page.wait_for_load_state("networkidle")
        page.wait_for_function("() => !document.querySelector('.pending, .generating, .translucent')")
        page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
    return text
