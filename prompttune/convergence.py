"""The convergence rule and the learning-speed measure, on a run's selection curve (pure functions).

- **Plateau rule** (choice): a run has converged at the first evaluation where its best selection score
  has not improved by more than ``min_delta`` for ``patience`` evaluations in a row. A run that reaches
  its step cap first has not converged; a claim resting on it is ``inconclusive (not converged)``.
  The rule reads the selection split only, so stopping on it never looks at the reported split.
- **Learned**: the best selection score after step 0 is above both the untrained (step-0) score and the
  majority-class score of the selection split.
- **Steps to gain** (IP-2): the first step at which the selection score reaches the untrained score plus
  ``fraction`` of the run's gain (best − untrained); step 0 never counts as progress, and a run that did
  not learn counts at its step cap (it did not get there within the budget).
"""

from __future__ import annotations

from collections.abc import Sequence

GAIN_FRACTION = 0.9


def rule_text(patience: int, min_delta: float) -> str:
    return f"best selection score not improved by more than {min_delta:g} for {patience} evaluations"


def plateau_step(
    steps: Sequence[int], scores: Sequence[float], patience: int, min_delta: float
) -> int | None:
    """The step of the first evaluation at which the plateau rule holds, else None. ``steps[0]`` is the
    untrained evaluation (step 0); it counts as the first best."""
    best = -float("inf")
    since = 0
    for step, score in zip(steps, scores, strict=True):
        if score > best + min_delta:
            best, since = max(best, score), 0
        else:
            best, since = max(best, score), since + 1
            if since >= patience:
                return int(step)
    return None


def learned(scores: Sequence[float], majority: float) -> bool:
    return len(scores) > 1 and max(scores[1:]) > max(scores[0], majority)


def steps_to_gain(
    steps: Sequence[int], scores: Sequence[float], majority: float, cap: int, fraction: float = GAIN_FRACTION
) -> float:
    """Steps to ``fraction`` of the gain over the untrained score (module docstring); ``cap`` when the run
    did not learn."""
    if not learned(scores, majority):
        return float(cap)
    target = scores[0] + fraction * (max(scores[1:]) - scores[0])
    return float(next(step for step, score in zip(steps[1:], scores[1:], strict=True) if score >= target))
