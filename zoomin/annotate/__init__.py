"""Build MagniFake data from labelled images with VLM endpoints: the paper's annotation pipeline.

A strong VLM explains each image from its known label (``prompts``), a Qwen2.5-VL-style grounder
places every cue of the explanation as boxes, and four filters keep only consistent annotations
(``filters``); both models are any OpenAI-compatible chat-completions endpoint (``client``). Inputs
are read by ``sources``, the run is ``pipeline``, and ``output`` writes the folder exactly once per
record, across kills and reruns. ``zoomin data annotate`` is the command line.
"""

from zoomin.annotate.client import Endpoint
from zoomin.annotate.pipeline import Settings, Summary, annotate, grounder_codec

__all__ = ["Endpoint", "Settings", "Summary", "annotate", "grounder_codec"]
