"""Write docs/images/app.png, the README's picture of the web app, with the browser tests' own code.

    python tests/screenshot_app.py                         # trains the tests' checkpoint (~1 min)
    python tests/screenshot_app.py --checkpoint runs/demo/checkpoint --image IMAGE

It serves ``zoomin app`` on 127.0.0.1, uploads the image in headless Chromium (/usr/bin/chromium),
clicks Detect and saves the whole page (``webapp.screenshot``, which
tests/test_app.py::test_screenshot_for_the_readme_is_made_by_the_test_code runs too).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from webapp import REPO, build_app_checkpoint, screenshot, serve_app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, help="a ZoomIn checkpoint (default: train the tests' one)")
    p.add_argument("--image", type=Path, help="the image to upload (default: the checkpoint's first example)")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "app.png")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="zoomin-screenshot-") as tmp:
        checkpoint = args.checkpoint or build_app_checkpoint(Path(tmp)).checkpoint
        image = args.image or sorted((checkpoint / "examples").iterdir())[0]
        with serve_app(checkpoint.absolute(), Path(tmp) / "app.log") as url:
            status = screenshot(url, image, args.out)
    print(f"wrote {args.out} ({status.splitlines()[0]})")


if __name__ == "__main__":
    main()
