"""Token ids a VLM must never generate."""

from __future__ import annotations

from typing import Any

VISION_TOKEN_FIELDS = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")


def vision_token_ids(model_config: Any) -> list[int]:
    """The image/video placeholder and delimiter ids of a Qwen-VL config.

    Generated text that contains them is read back as an image slot without an image: the
    multimodal position ids no longer add up and the forward pass fails. Every generation in this
    project suppresses them (a trained model never writes them; a random or drifting one can).
    """
    return [v for f in VISION_TOKEN_FIELDS if isinstance(v := getattr(model_config, f, None), int)]
