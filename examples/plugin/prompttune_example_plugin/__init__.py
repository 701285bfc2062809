"""An example plugin: what a user's own method and task look like outside the package.

- objective ``smooth``: cross-entropy with label smoothing (``smoothing``, default 0.1; choice), so the
  methods ``pt-smooth``, ``pt2-smooth`` exist;
- base ``ptz``: shallow prompt tuning whose prompt starts at zero (choice), exported to PEFT as ``pt`` is;
- task ``Toy``: a two-way entailment task in the SuperGLUE layout (``FewGLUE/Toy/train.jsonl``,
  ``FewGLUE_32dev/Toy/dev32.jsonl``, ``SuperGLUE/Toy/{train,val}.jsonl``: premise, hypothesis, label).

Each declares what the shared code reads (the registries refuse it otherwise, in one line).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from prompttune.bases.base import BASES
from prompttune.bases.pt import ShallowPrompt
from prompttune.model import Batch, PromptModel, StackedModel
from prompttune.objectives.base import OBJECTIVES, ObjectiveConfig
from prompttune.objectives.ce import CrossEntropy
from prompttune.tasks import get_task
from prompttune.tasks.base import register_task
from prompttune.tasks.common import superglue_files


@dataclass(frozen=True)
class SmoothConfig(ObjectiveConfig):
    smoothing: float = field(
        default=0.1, metadata={"help": "probability mass spread evenly over the classes"}
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError("smoothing must be in [0, 1)")


@OBJECTIVES.register("smooth")
class LabelSmoothing(CrossEntropy):
    """Cross-entropy's passes and parameters (inherited declarations), with smoothed targets."""

    name = "smooth"
    family = "smooth"  # joins no paper claim: its own family
    config_class = SmoothConfig

    def loss(self, model: PromptModel | StackedModel, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        per_example = F.cross_entropy(
            model(batch).logits, batch["labels"], reduction="none", label_smoothing=self.config.smoothing
        )
        loss = model.seed_means(per_example)
        return loss, {"smooth": loss.mean().item()}


@BASES.register("ptz")
class ZeroPrompt(ShallowPrompt):
    """``pt`` with the prompt initialised at zero: the sequence lengths, parameters and PEFT form are
    ``pt``'s (inherited declarations)."""

    name = "ptz"

    def __init__(self, config, backbone, tokenizer, task) -> None:  # noqa: ANN001
        super().__init__(config, backbone, tokenizer, task)
        with torch.no_grad():
            self.prompt.zero_()


# RTE's declaration (reader, labels, metric, official sizes) over files of its own folder
register_task(dataclasses.replace(get_task("RTE"), name="Toy", files=superglue_files("Toy")))
