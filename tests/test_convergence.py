"""The convergence rule and the learning-speed measure on hand-made selection curves."""

from __future__ import annotations

from prompttune.convergence import learned, plateau_step, steps_to_gain

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


def test_a_flat_curve_did_not_learn_and_counts_at_the_step_cap() -> None:
    flat = [0.3] * len(STEPS)
    assert not learned(flat, majority=0.3)
    assert steps_to_gain(STEPS, flat, majority=0.3, cap=200) == 200.0
    below_majority = [0.2, 0.25, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]
    assert not learned(below_majority, majority=0.3), "reaching the majority class is not learning"


def test_steps_to_gain_ignore_step_zero_and_measure_the_gain() -> None:
    curve = [0.3, 0.35, 0.5, 0.65, 0.7, 0.7, 0.7, 0.7]  # gain 0.4: 90 % of it is 0.66
    assert learned(curve, majority=0.33)
    assert steps_to_gain(STEPS, curve, majority=0.33, cap=200) == 40.0
    untrained_high = [0.9, 0.2, 0.5, 0.95, 0.95, 0.95, 0.95, 0.95]  # step 0 never counts as progress
    assert steps_to_gain(STEPS, untrained_high, majority=0.5, cap=200) == 30.0
