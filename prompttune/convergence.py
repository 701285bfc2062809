"""The convergence rule and the learning-speed measure, on a run's selection curve (pure functions).

- **Plateau rule** (choice): a run has converged at the first evaluation where its best selection score
  has not improved by more than ``min_delta`` for ``patience`` evaluations in a row. A run that reaches
  its step cap first has not converged; a claim resting on it is ``inconclusive (not converged)``.
  The rule reads the selection split only, so stopping on it never looks at the reported split.
- **Learned** (choice): the best selection score after step 0 is more than ``MIN_GAIN`` (5 points) above
  both the untrained (step-0) score and the majority-class score of the selection split — more than one
  example of a 32-example selection split (3.1 points), so a one-example blip is not learning.
- **Learning-curve area** (IP-2, choice): over the run's evaluation schedule — the steps ``eval_every,
  2·eval_every, …`` up to the step cap, plus the cap itself when it is not a multiple: the steps at which
  an uninterrupted run evaluates; step 0, the untrained evaluation, is excluded — the mean of
  ``max(0, score_k − majority)``, where ``score_k`` is the selection score at scheduled evaluation k. After
  a run stopped early, ``score_k`` is the score of the checkpoint it kept (its best selection score),
  carried forward to the cap. A fraction like the scores (the claims and the report convert to points).
  Higher is faster: a run that did not learn scores 0 (its speed is not compared), so a flat curve with
  a one-example blip does too; a run that learns half as much scores about half, and a run that learns
  the same amount sooner scores higher. It replaces "steps to 90 % of the run's own gain", which rewarded
  learning less: a flat curve with a one-example blip reached 90 % of its tiny gain at once.
"""

from __future__ import annotations

from collections.abc import Sequence

MIN_GAIN = 0.05  # the gain over the untrained and the majority score that counts as learning (choice)


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
    return len(scores) > 1 and max(scores[1:]) > max(scores[0], majority) + MIN_GAIN


def evaluation_steps(cap: int, eval_every: int) -> list[int]:
    """The steps at which a run that is not stopped early evaluates after step 0: every ``eval_every`` steps
    and at the step cap."""
    steps = list(range(eval_every, cap + 1, eval_every))
    return steps if steps and steps[-1] == cap else [*steps, cap]


def learning_area(
    steps: Sequence[int], scores: Sequence[float], majority: float, cap: int, eval_every: int
) -> float:
    """The learning-curve area (module docstring; choice): the mean over the evaluation schedule of the
    selection score's excess over the majority class, the kept (best) score carried forward after an early
    stop; 0 for a run that did not learn. It rises with the score at every scheduled evaluation, so a run
    that learns less cannot score higher, and one that gets as far sooner scores higher. ``steps[0]`` is the
    untrained evaluation (step 0); a curve whose later steps are not the schedule's first evaluations is an
    error."""
    schedule = evaluation_steps(cap, eval_every)
    evaluated = dict(zip(steps[1:], scores[1:], strict=True))
    if list(evaluated) != schedule[: len(evaluated)]:
        raise ValueError(f"curve steps {list(steps)} are not the evaluation schedule {schedule} from step 0")
    if not learned(scores, majority):
        return 0.0
    kept = max(scores)
    return sum(max(0.0, evaluated.get(step, kept) - majority) for step in schedule) / len(schedule)
