"""The convergence rule and the learning-speed measure on hand-made selection curves."""

from __future__ import annotations

import pytest

from prompttune.convergence import evaluation_steps, learned, learning_area, plateau_step

STEPS = [0, 10, 20, 30, 40, 50, 60, 70]


def test_plateau_is_reached_after_patience_evaluations_without_improvement() -> None:
    rising = [0.3, 0.4, 0.5, 0.6, 0.6, 0.55, 0.6, 0.59]
    assert (
        plateau_step(STEPS, rising, patience=3, min_delta=0.0) == 60
    )  # best 0.6 at step 30; 40, 50, 60 add nothing
    assert plateau_step(STEPS, rising, patience=5, min_delta=0.0) is None, "the step cap came first"
    still_rising = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65]
    assert plateau_step(STEPS, still_rising, patience=2, min_delta=0.0) is None
    assert plateau_step(STEPS, still_rising, patience=2, min_delta=0.06) == 20, "gains of 0.05 ≤ min_delta"


# The learning-curve area on a schedule of K = 8 evaluations (10, 20, …, 80) and a majority class of 1/2:
# every score is a multiple of 1/32 (one example of 32), so every area below is exact.
CAP, EVERY, MAJORITY = 80, 10, 0.5
EVALUATED = [0, 10, 20, 30, 40, 50, 60, 70, 80]
LEARNER = [0.5, 0.625, 0.75, 0.875, 0.875, 0.875, 0.875, 0.875, 0.875]


def area(scores: list[float], steps: list[int] = EVALUATED, cap: int = CAP) -> float:
    return learning_area(steps[: len(scores)], scores, MAJORITY, cap, EVERY)


def test_a_flat_curve_with_a_one_example_blip_did_not_learn_and_scores_zero() -> None:
    flat = [0.5] * 9
    blip = [0.5, 0.5, 0.5, 0.5 + 1 / 32, 0.5, 0.5, 0.5, 0.5, 0.5]
    spike = [0.5, 0.5, 0.5 + 1 / 16, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]  # a two-example noise spike
    assert area(LEARNER) == (0.125 + 0.25 + 6 * 0.375) / 8 == 0.328125
    assert not learned(blip, MAJORITY) and area(blip) == 0.0, "a one-example blip is not learning"
    assert not learned(flat, MAJORITY) and area(flat) == 0.0
    assert learned(spike, MAJORITY) and area(spike) == (1 / 16) / 8 < area(LEARNER) / 40, (
        "a spike counts once"
    )


def test_learning_half_the_gain_scores_half_so_it_ranks_slower() -> None:
    half = [0.5, 0.5625, 0.625, 0.6875, 0.6875, 0.6875, 0.6875, 0.6875, 0.6875]
    assert learned(half, MAJORITY) and area(half) == 0.1640625 == area(LEARNER) / 2


def test_reaching_the_same_level_sooner_scores_higher() -> None:
    sooner = [0.5, 0.875, 0.875, 0.875, 0.875, 0.875, 0.875, 0.875, 0.875]
    later = [0.5, 0.5, 0.5, 0.5, 0.625, 0.75, 0.875, 0.875, 0.875]
    assert area(sooner) == 0.375 > area(LEARNER) == 0.328125 > area(later) == 0.1875


def test_after_an_early_stop_the_kept_best_is_carried_forward_to_the_cap() -> None:
    assert area(LEARNER[:5]) == area(LEARNER), "stopping on the plateau changes nothing"
    dipped = [0.5, 0.625, 0.75, 0.875, 0.8125]  # stopped at step 40; the kept checkpoint is step 30's
    assert area(dipped) == (0.125 + 0.25 + 0.375 + 0.3125 + 4 * 0.375) / 8 == 0.3203125
    assert evaluation_steps(75, EVERY) == [10, 20, 30, 40, 50, 60, 70, 75], "the cap is evaluated too"
    assert area(dipped, cap=75) == 0.3203125, "still 8 scheduled evaluations"
    with pytest.raises(ValueError, match="not the evaluation schedule"):
        area([0.5, 0.625, 0.75], steps=[0, 10, 30])


def test_a_run_below_the_majority_class_everywhere_scores_zero() -> None:
    below = [0.25, 0.375, 0.4375, 0.46875, 0.46875, 0.46875, 0.46875, 0.46875, 0.46875]
    assert area(below) == 0.0 and not learned(below, MAJORITY)
    reaching = [0.25, 0.375, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    assert area(reaching) == 0.0 and not learned(reaching, MAJORITY), "reaching the majority is not learning"
