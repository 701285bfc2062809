"""The objective interface: given the model and a batch, the loss to minimise (and numbers to log).

An objective is an ``nn.Module`` so it can own trainable parameters of its own (they are optimised and
saved with the prompt); its typed config validates the options of ``run.objectives.<name>``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from prompttune.config import build
from prompttune.model import Batch, PromptModel
from prompttune.registry import Registry


@dataclass(frozen=True)
class ObjectiveConfig:
    """Options of an objective (none for plain cross-entropy)."""


class Objective(nn.Module, ABC):
    """``loss`` returns the loss to minimise and numbers to log. An objective that draws no random
    numbers and treats every example on its own may set ``stackable``: the training loop then also
    hands it a ``StackedModel`` (several seeds in one batch) and expects one loss per seed, which
    ``model.seed_means`` of a per-example loss gives in both cases. One whose loss reads nothing but
    ``model(batch).logits`` may set ``features_only``: with base ``head`` the loop then trains it on
    cached frozen-backbone features. One that reads ``model.base.prompt_vectors()`` sets ``needs_prompt``
    (a base without a prompt is then refused at config load). One whose loss is the mean of per-example
    terms sets ``separable``: ``train.micro_batch_size`` may then split its batches (gradient accumulation).

    What the claims compare is declared, never read off the name: ``family`` (``ce``, ``ptp``,
    ``infoprompt``, or a new method's own) and ``ablation_of`` (the objective this one removes a part
    of, e.g. InfoPrompt's single-loss ablations)."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type[ObjectiveConfig]] = ObjectiveConfig
    stackable: ClassVar[bool] = False
    features_only: ClassVar[bool] = False
    needs_prompt: ClassVar[bool] = False
    separable: ClassVar[bool] = False
    family: ClassVar[str] = ""
    ablation_of: ClassVar[str | None] = None

    def __init__(self, config: ObjectiveConfig, model: PromptModel) -> None:
        super().__init__()
        self.config = config

    @abstractmethod
    def loss(self, model: PromptModel, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]: ...


OBJECTIVES: Registry[type[Objective]] = Registry("objective")


def build_objective(name: str, options: dict[str, Any], model: PromptModel) -> Objective:
    """Instantiate objective ``name`` with its validated options."""
    cls = OBJECTIVES.get(name)
    return cls(build(cls.config_class, options, f"run.objectives.{name}"), model)
