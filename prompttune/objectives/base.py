"""The objective interface: given the model and a batch, the loss to minimise (and numbers to log); the
passes through the backbone a training step takes (``Passes``, declared by every objective, read by
prompttune/cost.py); its registry; and which (backbone, base, objective) combinations run
(``check_support``: objectives build on the prompt bases, so this is the lowest layer that knows both
registries).

An objective is an ``nn.Module`` so it can own trainable parameters of its own (they are optimised and
saved with the prompt); its typed config validates the options of ``run.objectives.<name>``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import PretrainedConfig

from prompttune.backbone import ARCHITECTURES, backbone_label
from prompttune.bases import BASES
from prompttune.errors import PromptTuneError
from prompttune.model import Batch, PromptModel
from prompttune.registry import DeclaredRegistry
from prompttune.schema import build


@dataclass(frozen=True)
class ObjectiveConfig:
    """Options of an objective (none for plain cross-entropy)."""


@dataclass(frozen=True)
class Passes:
    """One training step through the backbone in units of one forward ``F`` and one backward ``B`` of the
    batch; the autograd graphs alive at once; whether the loss is a mean over examples (micro-batches then
    give the same gradient); whether it takes HotFlip's vocabulary products (fp32, per sequence); whether
    it takes one forward without prompt per training example, once (InfoPrompt's cached ``r⁻``)."""

    forward: int
    backward: int
    live_graphs: int
    separable: bool
    hotflip: bool = False
    negatives: bool = False

    @property
    def extra(self) -> int:
        """Passes beyond plain cross-entropy's forward and backward, a forward with its backward counted
        once (choice: PTP's logged ``extra_passes``)."""
        return max(self.forward, self.backward) - 1


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
    of, e.g. InfoPrompt's single-loss ablations). So is the pass structure of a step (``passes``), which
    the cost model reads: registration refuses an objective that does not declare it."""

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

    @classmethod
    @abstractmethod
    def passes(cls, config: ObjectiveConfig) -> Passes:
        """The passes one training step takes under ``config`` (no default: every objective declares it)."""

    @classmethod
    @abstractmethod
    def trainable_parameters(cls, config: ObjectiveConfig, hidden: int) -> int:
        """Parameters the objective itself adds to what AdamW trains, on a backbone of ``hidden`` size
        (the prompt's and the head's are counted by their owners; no default)."""

    @abstractmethod
    def loss(self, model: PromptModel, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]: ...


OBJECTIVES = DeclaredRegistry(
    "objective",
    {
        "passes": ("pass structure", "the classmethod passes(config) -> Passes"),
        "trainable_parameters": (
            "trainable parameters",
            "the classmethod trainable_parameters(config, hidden) -> int",
        ),
    },
)


def objective_config(name: str, options: Mapping[str, Any]) -> ObjectiveConfig:
    """Objective ``name``'s options, validated, every default filled in."""
    return build(OBJECTIVES.get(name).config_class, dict(options), f"run.objectives.{name}")


def build_objective(name: str, options: Mapping[str, Any], model: PromptModel) -> Objective:
    """Instantiate objective ``name`` with its validated options."""
    return OBJECTIVES.get(name)(objective_config(name, options), model)


def objective_passes(name: str, options: Mapping[str, Any]) -> Passes:
    """The passes objective ``name`` declares for ``options`` (what prompttune/cost.py costs)."""
    return OBJECTIVES.get(name).passes(objective_config(name, options))


def _reason(base: str, objective: str, backbone_config: PretrainedConfig) -> str | None:
    """Why ``objective`` on ``base`` cannot run on the backbone (one clause), or ``None``; what an objective
    needs of its base it declares itself (``Objective.needs_prompt``)."""
    if backbone_config.model_type not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        return f"model type {backbone_config.model_type!r} is not supported; known: {known}"
    base_class = BASES.get(base)
    reason = base_class.unsupported(backbone_config)
    if reason is not None:
        return reason
    if OBJECTIVES.get(objective).needs_prompt and not base_class.has_prompt:
        return f"the objective needs a prompt and base {base!r} has none (use pt or pt2)"
    return None


def check_support(base: str, objective: str, backbone_config: PretrainedConfig) -> None:
    """Refuse, before any work, a combination that would crash or train wrong: a one-line
    ``PromptTuneError`` naming the backbone, the base and the objective (called at config load)."""
    reason = _reason(base, objective, backbone_config)
    if reason is not None:
        label = backbone_label(backbone_config)
        raise PromptTuneError(f"backbone {label}: base {base!r} with objective {objective!r}: {reason}")
