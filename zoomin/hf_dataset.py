"""A MagniFake folder as a Hugging Face ``datasets`` dataset with a dataset card, ready to publish.

Each ``<split>.jsonl`` of the folder becomes one split: the records that validate, with the image
embedded as an ``Image`` feature (the file's own bytes, so pixels and EXIF orientation are exactly
what training decoded) and ``boxes``, ``region_notes`` and the other fields as columns, plus the
upright ``width`` and ``height``. The splits are saved together with ``DatasetDict.save_to_disk``
(``OUT/<split>/`` each), and ``OUT/README.md`` is the card: what the columns mean, the box
convention, per-split counts and where the data came from (the import reports, copied beside it,
when the folder was made by ``zoomin data import``). ``zoomin.data.load_records("OUT/<split>")`` gives back the records
the folder's JSONL gives, and ``datasets.load_dataset(REPO)`` reads a pushed copy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from zoomin.data import Record, Report, load_records
from zoomin.images import DEFAULT_MAX_PIXELS

TAGS = ["ai-generated-image-detection", "image-forensics", "grounding", "magnifake", "zoomin"]


def features():
    import datasets

    return datasets.Features({
        "id": datasets.Value("string"),
        "image": datasets.Image(),
        "label": datasets.Value("string"),
        "boxes": datasets.List(datasets.List(datasets.Value("float64"))),
        "explanation": datasets.Value("string"),
        "generator": datasets.Value("string"),
        "source": datasets.Value("string"),
        "region_notes": datasets.List(datasets.Value("string")),
        "width": datasets.Value("int32"),
        "height": datasets.Value("int32"),
    })  # fmt: skip


def folder_to_hf(
    folder: str | os.PathLike,
    out: str | os.PathLike,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    pretty_name: str | None = None,
    license: str | None = None,
) -> dict[str, Report]:
    """Write ``folder``'s splits to ``out`` as a ``DatasetDict`` plus ``README.md``; returns each
    split's validation report (records with errors are left out and listed there)."""
    import datasets

    folder, out = Path(folder), Path(out)
    splits = sorted(folder.glob("*.jsonl"))
    if not splits:
        raise FileNotFoundError(f"{folder} has no <split>.jsonl files")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty")
    reports, built = {}, {}
    scratch = Path(tempfile.mkdtemp(prefix=".zoomin-hf-", dir=out.parent if out.parent.exists() else None))
    try:
        for path in splits:
            records, reports[path.stem] = load_records(path, max_pixels=max_pixels)
            built[path.stem] = datasets.Dataset.from_generator(
                _rows, features=features(), cache_dir=str(scratch), gen_kwargs={"records": records},
                split=datasets.NamedSplit(path.stem))
        datasets.DatasetDict(built).save_to_disk(str(out))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    imports = []
    for report in sorted(folder.glob("*.import_report.json")):  # provenance travels with the data
        imports.append(json.loads(report.read_text()))
        shutil.copyfile(report, out / report.name)
    card = dataset_card(datasets.load_from_disk(str(out)), imports, pretty_name or folder.name, license)
    card.save(str(out / "README.md"))
    return reports


def push_to_hub(out: str | os.PathLike, repo: str, *, private: bool = False) -> str:
    """Upload a folder written by :func:`folder_to_hf` to the Hub as dataset ``repo`` (data, import
    reports, card); the card keeps the ``dataset_info`` the upload wrote and adds ours. Returns the
    dataset's URL."""
    import datasets
    from huggingface_hub import DatasetCard, HfApi

    out = Path(out)
    ours = DatasetCard.load(str(out / "README.md"))
    datasets.load_from_disk(str(out)).push_to_hub(repo, private=private)
    for report in sorted(out.glob("*.import_report.json")):
        HfApi().upload_file(path_or_fileobj=str(report), path_in_repo=report.name, repo_id=repo,
                            repo_type="dataset")
    pushed = DatasetCard.load(repo, repo_type="dataset")
    metadata = {**pushed.data.to_dict(), **ours.data.to_dict()}
    text = ours.text.replace('load_dataset("REPO")', f'load_dataset("{repo}")')
    DatasetCard(f"---\n{_card_data(metadata).to_yaml()}\n---\n{text}").push_to_hub(repo, repo_type="dataset")
    return f"https://huggingface.co/datasets/{repo}"


def dataset_card(ds, imports: list[dict], pretty_name: str, license: str | None):
    """The dataset card: metadata, columns, box convention, per-split counts, provenance."""
    from huggingface_hub import DatasetCard

    licenses = {i.get("license") for i in imports}
    known = next(iter(licenses)) if len(licenses) == 1 else None  # one source license, stated by every import
    total = sum(len(split) for split in ds.values())
    metadata = {
        "pretty_name": pretty_name,
        "license": license or known or "other",
        "task_categories": ["image-classification", "object-detection"],
        "tags": TAGS,
        "size_categories": _size_category(total),
    }
    rows = []
    for name, split in ds.items():
        labels = split["label"]
        boxes = [len(b) for b in split["boxes"]]
        rows.append(f"| {name} | {len(split)} | {labels.count('fake')} | {labels.count('real')} | "
                    f"{sum(boxes) / max(len(boxes), 1):.2f} |")
    provenance = [f"- **{i['dataset']}** ({i['split']}): {i['n_records']} records from {i['n_items']} source "
                  f"items; {len(i['skipped'])} skipped and {len(i['repaired'])} repairs, each listed with its "
                  f"reason in `{Path(i['records']).stem}.import_report.json`"
                  + (f"; license {i['license']}" if i.get("license") else "")
                  + "".join(f"; {note}" for note in i.get("notes", [])) for i in imports]
    body = f"""
# {pretty_name}

MagniFake-format data for training and evaluating detectors of AI-generated images that show their
evidence (ZoomIn: locate suspicious regions, zoom in, examine). Written by `zoomin data to-hf`.

## Columns

| column | meaning |
|---|---|
| `id` | unique, stable record id |
| `image` | the image (its original file's bytes) |
| `label` | `real` or `fake` |
| `boxes` | suspicious regions, `[x1, y1, x2, y2]` in pixels of the upright image (EXIF orientation applied) |
| `region_notes` | one short note per box |
| `explanation` | the reference explanation of the verdict |
| `generator`, `source` | the generator and the source collection, where known |
| `width`, `height` | the upright image size the boxes refer to |

## Splits

| split | records | fake | real | boxes per image |
|---|---|---|---|---|
{chr(10).join(rows)}

## Provenance

{chr(10).join(provenance) if provenance else "Not recorded (the folder had no import reports)."}

Check the license of every source collection before redistributing.

## Use

```python
import datasets
ds = datasets.load_dataset("REPO")          # after `zoomin data to-hf DIR --out OUT --push-to-hub REPO`
ds = datasets.load_from_disk("OUT")         # the local copy
```

`zoomin data validate OUT/<split>` checks a split; training recipes take `OUT/<split>` as their data.
"""
    return DatasetCard(f"---\n{_card_data(metadata).to_yaml()}\n---\n{body}")


def _card_data(metadata: dict):
    from huggingface_hub import DatasetCardData

    return DatasetCardData(**metadata)


def _rows(records: list[Record]) -> Iterator[dict]:
    for r in records:
        yield {"id": r.id, "image": {"bytes": Path(r.image).read_bytes(), "path": Path(r.image).name},
               "label": r.label, "boxes": r.boxes, "explanation": r.explanation, "generator": r.generator,
               "source": r.source, "region_notes": r.region_notes, "width": r.image_size[0],
               "height": r.image_size[1]}


def _size_category(n: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "n>1M"
