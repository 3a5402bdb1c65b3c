"""``zoomin export --space``: a Hugging Face Space of the checkpoint, in its ``space/`` subfolder.

A model repo and a Space are two repos on the Hub, each with its own ``README.md`` whose metadata
means different things (a model card's ``base_model`` and ``model-index``; a Space's ``sdk`` and
``app_file``), so the Space is a folder of its own inside the exported one: the checkpoint folder is
the model repo (the upload leaves ``space/`` out) and ``space/`` is the Space repo. It runs as it is,
here and on the Hub: ``app.py`` serves the checkpoint around it (``..``) when there is one, else the
model its metadata names (``models:``, which is also how the Hub links a Space to its model).

The Space carries a copy of the ``zoomin`` package, the code that wrote the checkpoint: it imports
neither ``rl`` nor ``rewards`` (tests/test_layout.py), so the page needs no trainer and no package
index entry, and it reads the checkpoint exactly as the exporter wrote it. ``requirements.txt`` pins
what that code imports to the versions that made the checkpoint; the Space runner installs Gradio
itself from ``sdk_version``.
"""

from __future__ import annotations

import shutil
import sys
from importlib.metadata import version
from pathlib import Path

from huggingface_hub import SpaceCard, SpaceCardData

import zoomin

SPACE = "space"
REQUIREMENTS = ("torch", "torchvision", "transformers", "pillow", "numpy", "scipy", "huggingface_hub")
"""Distributions the app and the zoomin modules it loads import (scipy: box matching in zoomin.boxes;
torchvision: the Qwen processors' fast image path). tests/test_app.py checks the list against the imports."""

APP = '''"""A Hugging Face Space of a ZoomIn checkpoint, written by `zoomin export --space`.

`python app.py` serves it here as on the Hub. The checkpoint is the folder around this one when it is
a ZoomIn checkpoint (as exported), else the Hub model named under `models:` in README.md.
"""

from pathlib import Path

import torch
from huggingface_hub import SpaceCard, snapshot_download

from zoomin.app import ZoomInApp, example_images

HERE = Path(__file__).resolve().parent


def checkpoint() -> Path:
    if (HERE.parent / "zoomin.json").is_file():
        return HERE.parent
    models = SpaceCard.load(HERE / "README.md").data.models or []
    if not models:
        raise SystemExit("no checkpoint: this folder is not inside its checkpoint and README.md names no model")
    return Path(snapshot_download(models[0]))


app = ZoomInApp.from_checkpoint(checkpoint(), device="cuda" if torch.cuda.is_available() else "cpu",
                                examples=example_images(HERE))

if __name__ == "__main__":
    app.launch()  # host and port from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, as the Space runner sets them
'''


def write_space(checkpoint: Path, *, model_id: str | None, license: str, title: str = "ZoomIn detector") -> Path:
    """Write ``checkpoint/space`` (the checkpoint's ``examples/`` are copied into it); returns the folder."""
    import gradio

    space = checkpoint / SPACE
    space.mkdir()
    (space / "app.py").write_text(APP)
    (space / "requirements.txt").write_text(
        "# Pinned to the versions that exported this checkpoint; Gradio comes from sdk_version in README.md.\n"
        + "".join(f"{name}=={version(name)}\n" for name in REQUIREMENTS))
    shutil.copytree(Path(zoomin.__file__).parent, space / "zoomin", ignore=shutil.ignore_patterns("__pycache__"))
    if (checkpoint / "examples").is_dir():
        shutil.copytree(checkpoint / "examples", space / "examples")
    data = SpaceCardData(
        title=title,
        sdk="gradio",
        sdk_version=gradio.__version__,
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        app_file="app.py",
        license=license,
        models=[model_id] if model_id else None,
        tags=["zoomin", "ai-generated-image-detection"],
        emoji="🔍",
        colorFrom="blue",
        colorTo="gray",
        pinned=False,
        short_description="Real or AI-generated? Boxes, zoomed crops and the verdict",
    )
    model = f"[`{model_id}`](https://huggingface.co/{model_id})" if model_id else "in the folder around this one"
    SpaceCard(f"---\n{data.to_yaml()}\n---\n\n# {title}\n\n"
              f"A page for the ZoomIn checkpoint {model}: upload an image to see the located regions "
              "(numbered boxes), the zoomed crops, the preliminary and final verdicts with P(fake), both "
              "explanations and the time taken. `/detect` answers the same as JSON "
              "(`gradio_client.Client(URL).predict(handle_file(path), api_name=\"/detect\")`).\n\n"
              f"Run it here: `pip install -r requirements.txt gradio=={gradio.__version__}` then "
              "`python app.py`.\n").save(space / "README.md")
    return space


def set_space_model(space: Path, model_id: str) -> None:
    """Point the Space's metadata (``models:``, which ``app.py`` loads on the Hub) at ``model_id``."""
    card = SpaceCard.load(space / "README.md")
    card.data.models = [model_id]
    card.save(space / "README.md")
