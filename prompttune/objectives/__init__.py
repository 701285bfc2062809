"""Training objectives, registered by name, composable with every prompt base.

A method name is ``<base>[-<objective>]``: ``pt2`` is P-tuning v2 with plain cross-entropy,
``pt2-<objective>`` the same base with another objective.
"""

from prompttune.objectives import ce, infoprompt, ptp  # noqa: F401  (registration)
from prompttune.objectives.base import OBJECTIVES, Objective, ObjectiveConfig, build_objective, check_support

__all__ = ["OBJECTIVES", "Objective", "ObjectiveConfig", "build_objective", "check_support"]
