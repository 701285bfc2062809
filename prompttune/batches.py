"""Tokenisation and batching: examples → padded tensors.

Each example is tokenised once per run. Batches are padded to their own longest sequence (dynamic
padding). Multiple-choice examples become one sequence per choice, padded to the batch's largest
number of choices with a ``choice_mask``. ``text_mask`` marks the input text tokens (not special
tokens, not padding): the only positions a perturbation may touch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from prompttune.tasks.base import Example, Task

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Features:
    """One example, tokenised: one token sequence per choice (a single one for classification)."""

    sequences: tuple[dict[str, list[int]], ...]
    label: int
    index: int  # position in its split: ``batch["example_index"]`` lets objectives cache per example


def encode(
    examples: Sequence[Example], task: Task, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> list[Features]:
    """Tokenise (longest-first truncation to ``max_length``); examples without a label are refused."""
    out = []
    for index, example in enumerate(examples):
        if example.label is None:
            raise ValueError(f"example {example.guid} of {task.name} has no label")
        pairs = (
            [(example.text_a, choice) for choice in example.choices]
            if task.kind == "multiple_choice"
            else [(example.text_a, example.text_b)]
        )
        sequences = []
        for text_a, text_b in pairs:
            enc = tokenizer(
                text_a, text_b, truncation=True, max_length=max_length, return_special_tokens_mask=True
            )
            sequences.append({key: list(value) for key, value in enc.items()})
        out.append(Features(sequences=tuple(sequences), label=example.label, index=index))
    return out


def collate(features: Sequence[Features], tokenizer: PreTrainedTokenizerBase, multiple_choice: bool) -> Batch:
    """Pad a list of features into a batch."""
    n_choices = max(len(f.sequences) for f in features)
    flat: list[dict[str, list[int]]] = []
    choice_mask = torch.zeros(len(features), n_choices, dtype=torch.bool)
    for row, feature in enumerate(features):
        for col in range(n_choices):
            if col < len(feature.sequences):
                flat.append(feature.sequences[col])
                choice_mask[row, col] = True
            else:
                flat.append(feature.sequences[0])  # placeholder sequence, masked out of the softmax
    padded = tokenizer.pad(flat, return_tensors="pt")
    special = padded.pop("special_tokens_mask").bool()
    batch: Batch = dict(padded)
    batch["text_mask"] = batch["attention_mask"].bool() & ~special
    batch["labels"] = torch.tensor([f.label for f in features], dtype=torch.long)
    batch["example_index"] = torch.tensor([f.index for f in features], dtype=torch.long)
    if multiple_choice:
        batch["choice_mask"] = choice_mask
    return batch


def eval_batches(
    features: Sequence[Features], tokenizer: PreTrainedTokenizerBase, batch_size: int, multiple_choice: bool
) -> Iterator[Batch]:
    for start in range(0, len(features), batch_size):
        yield collate(features[start : start + batch_size], tokenizer, multiple_choice)


def length(feature: Features) -> int:
    """Tokens of an example, over all its choices."""
    return sum(len(sequence["input_ids"]) for sequence in feature.sequences)


def train_order(
    features: Sequence[Features],
    batch_size: int,
    generator: torch.Generator,
    start_step: int = 0,
    group_by_length: int = 0,
) -> Iterator[list[Features]]:
    """The training batches' examples: endless shuffled epochs (last partial batch dropped), the order
    depending only on ``generator`` (seeded by the run seed). ``start_step`` skips that many batches,
    so a resumed run sees exactly the batches an uninterrupted one would.

    ``group_by_length = G > 0`` (choice; the idea of transformers' ``group_by_length``): each epoch's
    shuffled order is cut into windows of G batches, each window sorted by length (longest first, ties
    in shuffled order) and cut into batches, and the epoch's batches are then shuffled. Every example
    is still seen once per epoch; a batch holds examples of similar length, so it pads less."""
    size = min(batch_size, len(features))
    lengths = [length(feature) for feature in features] if group_by_length else []
    step = 0
    while True:
        order = torch.randperm(len(features), generator=generator).tolist()
        order = order[: len(order) - len(order) % size]
        if group_by_length:
            window = group_by_length * size
            order = [
                i
                for start in range(0, len(order), window)
                for i in sorted(order[start : start + window], key=lambda j: -lengths[j])
            ]
        batches = [order[start : start + size] for start in range(0, len(order), size)]
        if group_by_length:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        for batch in batches:
            step += 1
            if step > start_step:
                yield [features[i] for i in batch]
