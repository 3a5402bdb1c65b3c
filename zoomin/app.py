"""The web app: a ZoomIn checkpoint in a browser page (Gradio), and the same detection as an API.

``zoomin app --checkpoint DIR`` and the Space an export writes (``space/app.py``) both build their
page here. A visitor uploads an image or picks one of the checkpoint's example images and sees what
``zoomin detect --save-viz`` shows: the image with the located boxes numbered, the zoomed crops the
second query saw, the preliminary and final verdicts with P(fake), both explanations and the time
taken. ``/detect`` (``gradio_client``: ``client.predict(handle_file(path), api_name="/detect")``)
returns the detection as JSON, the fields of :meth:`Detection.to_dict`.

Uploads arrive as files (``gr.File``), not through ``gr.Image``, whose own decoding would turn a
broken file into a bare "Error": every upload is decoded by :func:`zoomin.images.load_rgb` with the
detector's pixel limit, so a text file named ``.png`` or a decompression bomb gets its reason on the
page. One model serves every visitor: requests queue and run one at a time (one concurrency group
for the page and the API), and the queue is bounded, so a crowd gets "queue full" at once instead of
piling images up in memory; the upload size is bounded too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import gradio as gr
from gradio import FileData
from PIL import Image

from zoomin.checkpoint import CheckpointInfo
from zoomin.detector import Detection, ZoomInDetector
from zoomin.images import ImageProblem, load_rgb
from zoomin.viz import crop_strip, draw_boxes

QUEUE_SIZE = 16
"""Requests waiting at most; one more is refused with Gradio's "queue is full" message."""
MAX_FILE_SIZE = "25mb"
"""Largest upload accepted (Gradio refuses bigger files before they reach the model)."""
EXAMPLES = "examples"
"""Folder of a checkpoint (and of a Space) holding the example images the page offers."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
_CONCURRENCY = "model"


def example_images(folder: str | os.PathLike) -> list[Path]:
    """The image files in ``folder/examples`` (sorted), or none."""
    found = Path(folder) / EXAMPLES
    return sorted(p for p in found.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if found.is_dir() else []


class ZoomInApp:
    """A loaded detector and the page and API around it."""

    def __init__(self, detector: ZoomInDetector, examples: Sequence[str | os.PathLike] = (),
                 title: str = "ZoomIn detector"):
        self.detector = detector
        self.examples = [str(p) for p in examples]
        self.title = title

    @classmethod
    def from_checkpoint(cls, directory: str | os.PathLike, device: str = "cpu", **kwargs) -> ZoomInApp:
        """The app for a checkpoint folder, offering its ``examples/`` images unless told otherwise."""
        kwargs.setdefault("examples", example_images(directory))
        return cls(ZoomInDetector.from_pretrained(directory, device=device), **kwargs)

    # ---- the work --------------------------------------------------------------------------------
    def detect_file(self, path: str | os.PathLike) -> tuple[Image.Image, Detection, float]:
        """Decode ``path`` and run both queries; raises :class:`ImageProblem` naming the file only by
        its name (an upload's full path is a server-side temporary folder)."""
        started = time.perf_counter()
        try:
            image = load_rgb(path, self.detector.max_pixels)
        except ImageProblem as e:
            raise ImageProblem(str(e).replace(str(path), Path(path).name)) from None
        detection = self.detector.detect([image])[0]
        return image, detection, time.perf_counter() - started

    def api(self, image: FileData) -> dict:
        """Both queries on one uploaded image; the detection's fields as JSON (no crop images).

        Gradio derives the endpoint's type from the hint and hands the upload over as a dict with the
        file's ``path`` in its cache (it refuses paths that no client uploaded)."""
        try:
            _, detection, _ = self.detect_file(image["path"])
        except ImageProblem as e:
            raise gr.Error(str(e)) from None
        return detection.to_dict()

    def page(self, path: str | None) -> tuple:
        """The page's outputs for one upload: status, boxes, crops, regions, both explanations, JSON."""
        if not path:
            return _failed("Upload an image or pick an example first.")
        try:
            image, detection, seconds = self.detect_file(path)
        except ImageProblem as e:
            return _failed(f"Cannot use this file: {e}")
        return (
            _verdict(detection, seconds),
            draw_boxes(image, detection.boxes),
            crop_strip(detection.crops),
            _regions(detection),
            detection.locate_explanation or "(none)",
            detection.explanation or "(none)",
            detection.to_dict(),
        )

    # ---- the page --------------------------------------------------------------------------------
    def blocks(self) -> gr.Blocks:
        """The page and the ``/detect`` endpoint, queued (see the module docstring)."""
        info = self.detector.info
        with gr.Blocks(title=self.title, analytics_enabled=False) as demo:
            gr.Markdown(f"# {self.title}\n"
                        "Upload an image. Query 1 *locates* suspicious regions (numbered boxes), the regions are "
                        "*zoomed* (crops), and query 2 *examines* the image and the crops and gives the verdict "
                        f"with an explanation.\n\n{_lineage(info)}")
            with gr.Row():
                with gr.Column(scale=1):
                    upload = gr.File(label="Image", file_types=list(IMAGE_SUFFIXES), type="filepath",
                                     elem_id="upload")
                    button = gr.Button("Detect", variant="primary", elem_id="detect")
                    if self.examples:
                        gr.Examples([[p] for p in self.examples], inputs=[upload], label="Example images")
                with gr.Column(scale=2):
                    status = gr.Markdown(elem_id="status")
                    located = gr.Image(label="Located regions", type="pil", format="png", interactive=False,
                                       elem_id="located")
                    crops = gr.Image(label="Zoomed crops (what query 2 saw)", type="pil", format="png",
                                     interactive=False, elem_id="crops")
                    regions = gr.Markdown(elem_id="regions")
                    locate_text = gr.Textbox(label="Preliminary explanation (query 1, locate)", lines=2,
                                             interactive=False, elem_id="locate-explanation")
                    examine_text = gr.Textbox(label="Explanation (query 2, examine)", lines=3, interactive=False,
                                              elem_id="explanation")
                    with gr.Accordion("Detection as JSON (what /detect returns)", open=False):
                        raw = gr.JSON(elem_id="detection-json")
            button.click(self.page, inputs=[upload], outputs=[status, located, crops, regions, locate_text,
                                                              examine_text, raw],
                         api_visibility="private", concurrency_limit=1, concurrency_id=_CONCURRENCY)
            gr.api(self.api, api_name="detect", concurrency_limit=1, concurrency_id=_CONCURRENCY)
        return demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)

    def launch(self, host: str | None = None, port: int | None = None, **kwargs):
        """Serve the page (blocking unless ``prevent_thread_lock=True``); returns what Gradio's launch does.

        ``None`` takes Gradio's ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` (what a Space runner
        sets), else 127.0.0.1 and the first free port from 7860.
        """
        return self.blocks().launch(server_name=host, server_port=port, max_file_size=MAX_FILE_SIZE,
                                    footer_links=["api"], **kwargs)


def _failed(message: str) -> tuple:
    return f"### Cannot detect\n{message}", None, None, "", "", "", None


def _verdict(d: Detection, seconds: float) -> str:
    final = f"**{d.verdict}**" if d.verdict else "**no verdict** (the answer did not parse)"
    lines = [
        f"### Verdict: {final} &nbsp; P(fake) = {d.score:.3f}",
        f"Preliminary verdict (query 1): **{d.preliminary_verdict or 'none'}** · {len(d.boxes)} region(s) located, "
        f"{len(d.crops)} zoomed · {seconds:.2f} s",
    ]
    if d.problems:
        lines.append("Answer format problems: " + "; ".join(d.problems))
    return "\n\n".join(lines)


def _regions(d: Detection) -> str:
    if not d.boxes:
        return "No regions located."
    rows = ["| region | box [x1, y1, x2, y2] in image pixels | zoomed |", "|---|---|---|"]
    rows += [f"| Region {i} | [{', '.join(f'{v:.0f}' for v in box)}] | {'yes' if i <= len(d.crops) else 'no'} |"
             for i, box in enumerate(d.boxes, start=1)]
    return "\n".join(rows)


def _lineage(info: CheckpointInfo) -> str:
    origin = (f"a local model folder (`{info.base_model}`, not on the Hub)" if info.base_model_local
              else f"`{info.base_model}`" if info.base_model else "an unrecorded model")
    stages = " → ".join(s.stage for s in info.stages)
    return f"Checkpoint trained from {origin}" + (f" by {stages}." if stages else ".")
