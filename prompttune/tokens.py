"""Tokenised splits cached on disk with ``datasets``: each split is tokenised once per (task, backbone).

The entry's key is a SHA-256 of the task (name, version), the tokenizer (name, class, vocabulary size),
``max_length`` and every example's guid, texts, choices and label, so a change to any of them makes a
new entry and a stale one is never read. Location (choice): ``$PROMPTTUNE_CACHE/tokens``, by default
``~/.cache/prompttune/tokens``; ``PROMPTTUNE_CACHE=off`` turns the cache off.

Concurrency (several pipeline jobs tokenising the same split at once): an entry is written into a
temporary sibling folder and then renamed into place. Renaming a folder onto a name that already holds
a non-empty folder fails, so the first writer wins, the others discard their copy and read the
winner's; a reader only ever sees a complete entry, and no lock is needed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from prompttune.batches import Features, encode
from prompttune.io import cache_entry
from prompttune.paths import user_cache
from prompttune.tasks.base import Example, Task


def cache_root() -> Path | None:
    """The tokenisation cache folder, or ``None`` when ``PROMPTTUNE_CACHE=off``."""
    return user_cache("tokens")


def cache_key(
    examples: Sequence[Example], task: Task, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> str:
    """SHA-256 over everything the tokenised features depend on."""
    digest = hashlib.sha256()
    header = [task.name, task.version, tokenizer.name_or_path, type(tokenizer).__name__, len(tokenizer)]
    digest.update(json.dumps([*header, max_length]).encode())
    for ex in examples:
        digest.update(json.dumps([ex.guid, ex.text_a, ex.text_b, list(ex.choices), ex.label]).encode())
    return digest.hexdigest()


def store(path: Path, features: Sequence[Features]) -> bool:
    """Write ``features`` as the entry ``path``; ``False`` when another writer placed it first."""
    from datasets import Dataset, disable_progress_bars

    disable_progress_bars()
    keys = list(features[0].sequences[0])
    columns = {key: [[seq[key] for seq in f.sequences] for f in features] for key in keys}
    columns |= {"label": [f.label for f in features], "index": [f.index for f in features]}

    def fill(tmp: Path) -> None:
        Dataset.from_dict(columns).save_to_disk(str(tmp))
        (tmp / "keys.json").write_text(json.dumps(keys))

    return cache_entry(path, fill)


def load(path: Path) -> list[Features]:
    """Read an entry written by ``store``."""
    from datasets import Dataset

    keys = json.loads((path / "keys.json").read_text())
    rows = Dataset.load_from_disk(str(path)).to_dict()
    return [
        Features(
            sequences=tuple(
                {key: rows[key][i][choice] for key in keys} for choice in range(len(rows[keys[0]][i]))
            ),
            label=rows["label"][i],
            index=rows["index"][i],
        )
        for i in range(len(rows["label"]))
    ]


def encode_cached(
    examples: Sequence[Example], task: Task, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> list[Features]:
    """``encode``, read from the cache when this exact split was tokenised before (else written to it)."""
    root = cache_root()
    if root is None or not examples:
        return encode(examples, task, tokenizer, max_length)
    path = root / f"{task.name}-{cache_key(examples, task, tokenizer, max_length)[:32]}"
    if path.is_dir():
        try:
            return load(path)
        except Exception as exc:  # an entry damaged outside the project: rebuild it
            print(f"warning: tokenisation cache {path} unreadable ({exc}); rebuilding", file=sys.stderr)
            shutil.rmtree(path, ignore_errors=True)
    features = encode(examples, task, tokenizer, max_length)
    store(path, features)
    return features
