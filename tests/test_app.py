"""The web app for real: ``zoomin app`` serving a trained checkpoint on 127.0.0.1, driven by headless
Chromium (Playwright) and by ``gradio_client``; and the exported Space started with ``python app.py``.

The checkpoint writes real answers (tests/webapp.py), so the page shows what the model said: the
tests compare it with the detector run directly on the same image.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import fields
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from PIL import Image
from webapp import (
    CHROMIUM,
    chromium_page,
    detect,
    free_port,
    open_app,
    screenshot,
    serve_app,
    served,
    upload,
    uploaded,
)

from zoomin.detector import Detection, ZoomInDetector
from zoomin.images import DEFAULT_MAX_PIXELS, load_rgb
from zoomin.viz import COLOURS, MIN_WIDTH

pytestmark = pytest.mark.slow
DETECTION_FIELDS = {f.name for f in fields(Detection)} - {"crops"}


@pytest.fixture(scope="module")
def app_url(app_checkpoint, tmp_path_factory):
    log = tmp_path_factory.mktemp("served") / "app.log"
    with serve_app(app_checkpoint.checkpoint, log) as url:
        yield url


@pytest.fixture(scope="session")
def chromium():
    """Chromium must be there in CI (.ci/run installs it); elsewhere its absence skips the test."""
    if not Path(CHROMIUM).is_file():
        reason = f"{CHROMIUM} is missing: `apt-get install chromium` (Debian's package; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def expected(app_checkpoint) -> Detection:
    """What the checkpoint answers on the fake image, run in this process without the app."""
    detector = ZoomInDetector.from_pretrained(app_checkpoint.checkpoint)
    return detector.detect([load_rgb(app_checkpoint.fake_image)])[0]


def _image(page, selector: str) -> Image.Image:
    """The picture an ``<img>`` on the page shows, fetched as the browser fetches it."""
    src = page.locator(selector).first.get_attribute("src")
    return Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB")


@pytest.mark.browser
def test_uploaded_image_gets_a_verdict_numbered_boxes_and_crops(app_url, app_checkpoint, expected, chromium):
    assert expected.verdict == "fake" and expected.boxes, "the checkpoint no longer answers with boxes"
    with chromium_page() as page:
        open_app(page, app_url)
        assert page.title() == "ZoomIn detector"
        assert "local model folder" in page.locator("body").inner_text()
        upload(page, app_checkpoint.fake_image)
        status = detect(page)
        assert f"Verdict: {expected.verdict}" in status and f"P(fake) = {expected.score:.3f}" in status
        assert f"Preliminary verdict (query 1): {expected.preliminary_verdict}" in status and " s" in status
        rows = page.locator("#regions tbody tr").all_inner_texts()
        assert len(rows) == len(expected.boxes)
        for i, (row, box) in enumerate(zip(rows, expected.boxes), start=1):
            assert row.split("\t")[:2] == [f"Region {i}", "[" + ", ".join(f"{v:.0f}" for v in box) + "]"]
        shown = _image(page, "#located img")
        assert shown.width == MIN_WIDTH  # the 112 px image enlarged, boxes drawn on it
        colours = {c for _, c in shown.getcolors(maxcolors=1 << 20)}
        assert set(COLOURS[: len(expected.boxes)]) <= colours
        strip = _image(page, "#crops img")  # the crops side by side, framed in their boxes' colours
        assert strip.width == sum(c.width + 6 for c in expected.crops) + 6
        assert set(COLOURS[: len(expected.crops)]) <= {c for _, c in strip.getcolors(maxcolors=1 << 20)}
        assert page.locator("#explanation textarea").input_value() == expected.explanation
        assert page.locator("#locate-explanation textarea").input_value() == expected.locate_explanation


@pytest.mark.browser
def test_an_example_image_can_be_picked(app_url, app_checkpoint, chromium):
    example = sorted((app_checkpoint.checkpoint / "examples").iterdir())[0]
    with chromium_page() as page:
        open_app(page, app_url)
        page.get_by_role("button", name=example.name).click()
        uploaded(page, example.name)
        assert "Verdict:" in detect(page)


@pytest.mark.browser
def test_bad_files_show_the_reason_on_the_page(app_url, tmp_path, chromium):
    text = tmp_path / "notes.png"
    text.write_text("this is a text file, not a picture\n")
    huge = tmp_path / "huge.png"
    side = int(DEFAULT_MAX_PIXELS**0.5) + 1
    Image.new("1", (side, side)).save(huge)  # a small file that decodes to more pixels than the limit
    with chromium_page() as page:
        for path, reason in ((text, "image cannot be decoded: notes.png"), (huge, "over the limit")):
            open_app(page, app_url)
            upload(page, path)
            status = detect(page)
            assert status.startswith("Cannot detect") and reason in status, status
            assert "Traceback" not in page.locator("body").inner_text()
            assert page.locator("#located img").count() == 0


@pytest.mark.browser
def test_screenshot_for_the_readme_is_made_by_the_test_code(app_url, app_checkpoint, tmp_path, chromium):
    out = tmp_path / "app.png"
    assert "Verdict:" in screenshot(app_url, app_checkpoint.fake_image, out)
    with Image.open(out) as picture:
        assert picture.width == 1280 and picture.height > 800


def test_detect_endpoint_answers_gradio_client_with_the_detection(app_url, app_checkpoint, expected, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    assert set(client.view_api(return_format="dict", print_info=False)["named_endpoints"]) == {"/detect"}
    result = client.predict(handle_file(str(app_checkpoint.fake_image)), api_name="/detect")
    assert set(result) == DETECTION_FIELDS
    want = expected.to_dict()
    assert result.pop("score") == pytest.approx(want.pop("score"), abs=1e-4)  # another process, same weights
    assert result == want
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(AppError, match="image cannot be decoded: notes.png"):
        client.predict(handle_file(str(text)), api_name="/detect")


def test_exported_space_runs_with_python_app_py(app_checkpoint, tmp_path):
    from gradio_client import Client, handle_file

    space = app_checkpoint.checkpoint / "space"
    example = sorted((space / "examples").iterdir())[0]
    port = str(free_port())
    env = {"GRADIO_SERVER_PORT": port, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_TEMP_DIR": str(tmp_path / "gradio"),
           "PYTHONPATH": ""}  # the Space's own copy of zoomin, as on the Hub
    with served([sys.executable, "app.py"], space, tmp_path / "space.log", env) as url:
        result = Client(url, verbose=False).predict(handle_file(str(example)), api_name="/detect")
    assert set(result) == DETECTION_FIELDS and result["verdict"] in ("real", "fake")


def test_space_requirements_cover_what_its_app_imports(app_checkpoint):
    """The Space loads its own copy of zoomin, and every distribution that copy or ``app.py`` imports is
    pinned in requirements.txt or is Gradio (which the Space runner installs from ``sdk_version``).
    What those distributions import in turn is their own metadata's business (and transformers imports
    many optional packages only when they happen to be installed, so sys.modules would overstate it)."""
    import ast
    import subprocess

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    space = app_checkpoint.checkpoint / "space"
    probe = ("import sys, app; print('\\n'.join(m.__file__ for n, m in list(sys.modules.items()) "
             "if n.split('.')[0] == 'zoomin'))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=space, capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": "", "OMP_NUM_THREADS": "1"}).stdout.split()
    assert loaded and all(Path(f).is_relative_to(space / "zoomin") for f in loaded), loaded
    names = set()
    for source in [space / "app.py", *map(Path, loaded)]:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    providers = packages_distributions()
    imported = {canonicalize_name(d) for n in names - {"zoomin"} for d in providers.get(n, [])}
    lines = (space / "requirements.txt").read_text().splitlines()
    pinned = {canonicalize_name(Requirement(line).name) for line in lines if line and not line.startswith("#")}
    assert "torch" in imported and imported - pinned == {"gradio"}
