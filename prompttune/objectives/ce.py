"""``ce``: plain cross-entropy over classes or choices (vanilla prompt tuning, P-tuning v2; paper)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from prompttune.model import Batch, PromptModel
from prompttune.objectives.base import OBJECTIVES, Objective


@OBJECTIVES.register("ce")
class CrossEntropy(Objective):
    name = "ce"

    def loss(self, model: PromptModel, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        loss = F.cross_entropy(model(batch).logits, batch["labels"])
        return loss, {"ce": loss.item()}
