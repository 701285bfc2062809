"""Training batch order: plain shuffled epochs, and length-grouped batches (``group_by_length``)."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from prompttune.batches import Features, length, train_order

RNG = random.Random(0)
LENGTHS = [RNG.randint(3, 60) for _ in range(70)]
FEATURES = [
    Features(sequences=({"input_ids": [1] * n},), label=i % 2, index=i) for i, n in enumerate(LENGTHS)
]


def batches(n: int, batch_size: int = 8, seed: int = 1, start: int = 0, group: int = 0) -> list[list[int]]:
    order = train_order(FEATURES, batch_size, torch.Generator().manual_seed(seed), start, group)
    return [[f.index for f in batch] for batch in itertools.islice(order, n)]


def test_plain_order_is_the_generators_permutation_cut_into_batches() -> None:
    generator = torch.Generator().manual_seed(1)
    expected = []
    for _ in range(2):  # two epochs of 70 examples: 8 full batches of 8 each, the last 6 dropped
        perm = torch.randperm(70, generator=generator).tolist()
        expected += [perm[i : i + 8] for i in range(0, 64, 8)]
    assert batches(16) == expected


@pytest.mark.parametrize("group", [1, 2, 4, 100])
def test_grouped_epochs_see_every_kept_example_once(group: int) -> None:
    epoch = batches(8, group=group)
    seen = [i for batch in epoch for i in batch]
    assert len(seen) == len(set(seen)) == 64
    plain = [i for batch in batches(8) for i in batch]
    assert set(seen) == set(plain), "the same examples are kept (and dropped) as without grouping"


def test_a_window_of_the_whole_epoch_splits_it_by_length() -> None:
    epoch = batches(8, group=100)
    maxima = sorted((max(LENGTHS[i] for i in b), min(LENGTHS[i] for i in b)) for b in epoch)
    for (low_max, _), (_, high_min) in itertools.pairwise(maxima):
        assert low_max <= high_min, "batches are disjoint length ranges"
    assert [max(LENGTHS[i] for i in b) for b in epoch] != sorted(
        (max(LENGTHS[i] for i in b) for b in epoch), reverse=True
    ), "the batches' order is shuffled, not longest first"


def test_grouping_pads_less() -> None:
    def mean_padded(group: int) -> float:
        return sum(max(LENGTHS[i] for i in b) for b in batches(80, group=group)) / 80

    assert mean_padded(4) < 0.85 * mean_padded(0)
    assert length(FEATURES[5]) == LENGTHS[5]


@pytest.mark.parametrize("group", [0, 4])
def test_start_step_resumes_the_same_sequence(group: int) -> None:
    assert batches(20, start=13, group=group) == batches(33, group=group)[13:]
