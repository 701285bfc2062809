"""``ce``: plain cross-entropy over classes or choices (vanilla prompt tuning, P-tuning v2; paper)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from prompttune.model import Batch, PromptModel, StackedModel
from prompttune.objectives.base import OBJECTIVES, Objective, ObjectiveConfig, Passes


@OBJECTIVES.register("ce")
class CrossEntropy(Objective):
    name = "ce"
    family = "ce"
    stackable = True
    features_only = True
    separable = True

    @classmethod
    def passes(cls, config: ObjectiveConfig) -> Passes:
        """One forward and its backward."""
        return Passes(1, 1, 1, separable=cls.separable)

    @classmethod
    def trainable_parameters(cls, config: ObjectiveConfig, hidden: int) -> int:
        """None of its own."""
        return 0

    def loss(self, model: PromptModel | StackedModel, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        loss = model.seed_means(F.cross_entropy(model(batch).logits, batch["labels"], reduction="none"))
        return loss, {"ce": loss.mean().item()}
