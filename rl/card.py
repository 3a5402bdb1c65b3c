"""The model card of an exported checkpoint, built with huggingface_hub's ``ModelCard``.

The Hub reads a card's metadata, not its prose: ``base_model`` (with ``base_model_relation``) places
the checkpoint in the model tree of the model training started from, and ``model-index`` (written
from ``EvalResult``\\ s) carries the scores that search and leaderboards show. Both come from data,
never from a local folder name: the base model from the lineage in ``zoomin.json``, the scores from
a ``zoomin eval`` result. A checkpoint whose training started from a local folder (the demo's
random-weight model) names no ``base_model`` and says so in the text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from zoomin.checkpoint import CheckpointInfo

TASK = ("image-classification", "AI-generated image detection")
"""The model-index task (type, name): real/fake is a two-class decision about an image."""
METRICS: tuple[tuple[str, str, str, dict], ...] = (
    ("accuracy", "accuracy", "Accuracy", {}),
    ("f1", "f1", "F1 (fake)", {}),
    ("auroc", "roc_auc", "AUROC (P(fake))", {}),
    ("iou", "iou", "IoU (located vs annotated boxes)", {}),
    ("bleu2", "bleu", "BLEU-2 (explanation)", {"metric_args": {"max_order": 2}}),
    ("rougeL", "rouge", "ROUGE-L (explanation)", {"metric_config": "rougeL"}),
    ("preliminary_accuracy", "accuracy", "Preliminary accuracy (query 1)", {"metric_config": "preliminary"}),
)
"""(key in :func:`zoomin.metrics.compute_metrics`, model-index metric type, name, extra fields)."""


@dataclass
class Evaluation:
    """One condition of a ``zoomin eval`` run and the data it ran on; ``metrics["n"]`` is its size."""

    dataset: str
    split: str
    metrics: dict

    @classmethod
    def from_eval_json(cls, path: str | Path, dataset: str, split: str, condition: str = "clean") -> Evaluation:
        """Read the ``zoomin eval --out`` file ``path``; a wrong file is a ValueError naming it."""
        try:
            result = json.loads(Path(path).read_text())
            metrics = result["metrics"][condition]
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
        except (KeyError, TypeError):
            raise ValueError(f"{path} is not a `zoomin eval --out` result with {condition!r} metrics") from None
        return cls(dataset, split, metrics)


@dataclass
class Evidence:
    """One evidence picture in the checkpoint (path relative to it) and what the model said."""

    id: str
    label: str
    picture: str
    verdict: str | None
    score: float


def eval_results(evaluation: Evaluation) -> list[EvalResult]:
    """The model-index entries of ``evaluation``; metrics that are None (undefined on this data) are left out."""
    size = evaluation.metrics.get("n")
    return [
        EvalResult(task_type=TASK[0], task_name=TASK[1], dataset_type=evaluation.dataset,
                   dataset_name=evaluation.dataset, dataset_split=evaluation.split,
                   dataset_args={"num_samples": size} if size else None,
                   metric_type=metric_type, metric_name=name, metric_value=round(float(value), 4), **extra)
        for key, metric_type, name, extra in METRICS
        if (value := evaluation.metrics.get(key)) is not None
    ]


def model_card(
    info: CheckpointInfo,
    *,
    model_name: str,
    evaluation: Evaluation | None = None,
    datasets: list[str] | None = None,
    license: str = "apache-2.0",
    evidence: list[Evidence] | None = None,
    recipe: str | None = None,
    command: str | None = None,
    space: bool = False,
) -> ModelCard:
    """The card of a checkpoint: Hub metadata, what the model does, lineage, scores, evidence, recipe."""
    on_hub = info.base_model is not None and not info.base_model_local
    data = ModelCardData(
        model_name=model_name,
        base_model=info.base_model if on_hub else None,
        base_model_relation="finetune" if on_hub else None,
        license=license,
        library_name="transformers",
        pipeline_tag="image-text-to-text",
        tags=["zoomin", "ai-generated-image-detection", "visual-grounding", info.family,
              *sorted({s.stage.split("_")[0] for s in info.stages if s.stage != "warmup"})],
        datasets=datasets or None,
        eval_results=eval_results(evaluation) if evaluation else None,
    )
    body = [
        f"# {model_name}\n",
        "Tells real images from AI-generated ones and shows where the evidence is (ZoomIn: locate, zoom, "
        "examine). Query 1 *locates* suspicious regions as boxes, the regions are zoomed and shown again, "
        "and query 2 *examines* the image and the crops and gives the verdict with an explanation. "
        "Prompts, crop policy and box convention are in `zoomin.json`; the weights load with plain "
        "`AutoModelForImageTextToText`.\n",
        "## Base model\n",
        _origin(info) + "\n",
    ]
    if info.stages:
        body += ["## Training stages\n",
                 "| # | stage | recipe | training data | records | started (UTC) | ended (UTC) |",
                 "|---|---|---|---|---|---|---|"]
        body += [f"| {i} | {s.stage} | {_code(s.recipe)} | `{s.data}` | {s.records} | {s.started} | {s.ended} |"
                 for i, s in enumerate(info.stages, start=1)]
        body.append("")
    if evaluation:
        size = evaluation.metrics.get("n")
        body += ["## Evaluation (`zoomin eval`)\n",
                 f"On {evaluation.dataset}, split `{evaluation.split}`" + (f", {size} images." if size else "."), "",
                 "| metric | value |", "|---|---|"]
        body += [f"| {name} | {evaluation.metrics[key]:.4f} |" for key, _, name, _ in METRICS
                 if evaluation.metrics.get(key) is not None]
        body.append("")
    if evidence:
        body += ["## Evidence\n", "What `zoomin detect --save-viz` draws for a few evaluation images: the located "
                 "boxes numbered, the zoomed crops, the verdict and P(fake).\n"]
        for e in evidence:
            body += [f"![{e.id}]({e.picture})", "",
                     f"*{e.id}*: labelled **{e.label}**; verdict **{e.verdict or 'none'}**, P(fake) {e.score:.3f}.\n"]
    body += ["## Use\n", "```bash", "zoomin detect photo.jpg --checkpoint THIS_FOLDER --save-viz out/",
             "zoomin app --checkpoint THIS_FOLDER          # the same in a browser page", "```\n"]
    if space:
        body.append("`space/` holds a Hugging Face Space of this checkpoint (a Gradio page); "
                    "`cd space && python app.py` runs it here.\n")
    if recipe:
        body += ["## Recipe of the last stage\n", "```yaml", recipe.rstrip(), "```\n"]
    if command:
        body += ["Trained with:\n", "```bash", command.rstrip(), "```\n"]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))


def _origin(info: CheckpointInfo) -> str:
    if info.base_model is None:
        return "The model training started from was not recorded."
    if info.base_model_local:
        return (f"Trained from a local model folder (`{info.base_model}`), not from a model published on the Hub, "
                "so this card names no `base_model`.")
    return f"Fine-tuned from [`{info.base_model}`](https://huggingface.co/{info.base_model}) ({info.family})."


def _code(text: str | None) -> str:
    return f"`{text}`" if text else "-"
