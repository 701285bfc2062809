"""PTP: prompt tuning with perturbation-based regularisation (paper: random-noise RN and adversarial
ADV perturbations, in text space and in embedding space, training on clean and perturbed inputs).

Everything below the paper's one-line description is the project's choice (docs/methods.md#ptp):

- loss ``L = CE(x) + λ·CE(x̃)``, λ = ``weight`` (default 1);
- only input text tokens are perturbed (``batch["text_mask"]``): never the prompt, special tokens or
  padding; multiple-choice batches perturb every (context, choice) sequence;
- embedding scales are relative to ``rms(E)``, the root-mean-square entry of the backbone's word
  embedding matrix, so the defaults carry across backbones;
- random draws use the global torch RNG (seeded per run by the training loop).

Variants and defaults:

- ``ptp-rn-emb``: ``x̃ = e(x) + δ``, ``δ ~ N(0, (σ·rms(E))²)`` per coordinate; σ = 0.1.
- ``ptp-adv-emb``: PGD in the per-token ℓ2 ball of radius ``ε·rms(E)·√d``; K = 2, ε = 0.05, α = ε/2.
- ``ptp-rn-text``: each text token replaced by the mask token with probability p; p = 0.1.
- ``ptp-adv-text``: HotFlip, the k first-order-best (position, token) substitutions; k = ⌈0.1·len⌉.

Passes per step (``passes``, what the cost model reads; two graphs alive at once, clean and perturbed):
rn ``2F + 2B``; adv-emb ``(K + 2)·(F + B)``, K ascent steps besides the clean and the perturbed pass;
adv-text ``2F + 3B``, ∇_{e(x)} CE of the clean pass besides, and HotFlip's vocabulary products.

``logs``: ``ce`` (clean), ``ce_perturbed`` and ``extra_passes``, ``Passes.extra`` of that declaration: the
passes through the network beyond plain CE, a forward with its backward counted once (rn 1, adv-emb K + 1,
adv-text 2: ∇_{e(x)} CE and the pass on x̃).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from prompttune.model import Batch, PromptModel
from prompttune.objectives.base import OBJECTIVES, Objective, ObjectiveConfig, Passes


def embedding_rms(model: PromptModel) -> float:
    """``rms(E)``: root-mean-square entry of the backbone's word-embedding matrix."""
    table = model.backbone.get_input_embeddings().weight.detach()
    return table.float().pow(2).mean().sqrt().item()


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class PTPConfig(ObjectiveConfig):
    """Options shared by every PTP variant."""

    weight: float = field(default=1.0, metadata={"help": "λ in CE(x) + λ·CE(x̃) (choice)"})

    def __post_init__(self) -> None:
        _check(self.weight >= 0, "weight must be ≥ 0")


@dataclass(frozen=True)
class RandomEmbeddingConfig(PTPConfig):
    sigma: float = field(default=0.1, metadata={"help": "noise std per coordinate, in units of rms(E)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.sigma > 0, "sigma must be > 0")


@dataclass(frozen=True)
class AdversarialEmbeddingConfig(PTPConfig):
    steps: int = field(default=2, metadata={"help": "K, PGD ascent steps"})
    epsilon: float = field(default=0.05, metadata={"help": "per-token ℓ2 ball radius, in units of rms(E)·√d"})
    alpha: float | None = field(
        default=None, metadata={"help": "PGD step length in units of rms(E)·√d; None: epsilon/2"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.steps >= 1, "steps must be ≥ 1")
        _check(self.epsilon > 0, "epsilon must be > 0")
        _check(self.alpha is None or self.alpha > 0, "alpha must be > 0")

    @property
    def step_size(self) -> float:
        return self.alpha if self.alpha is not None else self.epsilon / 2


@dataclass(frozen=True)
class RandomTextConfig(PTPConfig):
    p: float = field(default=0.1, metadata={"help": "probability of replacing each text token"})

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(0 < self.p <= 1, "p must be in (0, 1]")


@dataclass(frozen=True)
class AdversarialTextConfig(PTPConfig):
    fraction: float = field(
        default=0.1, metadata={"help": "k = ceil(fraction · text tokens) substitutions per sequence"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(0 < self.fraction <= 1, "fraction must be in (0, 1]")


def project(delta: torch.Tensor, radius: float) -> torch.Tensor:
    """Project every token's vector (last dimension) onto the ℓ2 ball of ``radius``."""
    norms = delta.norm(dim=-1, keepdim=True)
    return delta * (radius / norms.clamp(min=radius)).clamp(max=1.0)


def uniform_ball(shape: torch.Size, radius: float, device: torch.device) -> torch.Tensor:
    """Points drawn uniformly from the ℓ2 ball of ``radius`` (last dimension), global RNG."""
    direction = F.normalize(torch.randn(shape, device=device), dim=-1)
    scale = torch.rand(*shape[:-1], 1, device=device).pow(1.0 / shape[-1])
    return direction * scale * radius


def pgd_delta(
    model: PromptModel, batch: Batch, embeds: torch.Tensor, radius: float, step: float, steps: int
) -> torch.Tensor:
    """PGD on CE in the per-token ℓ2 ball (choice): δ₀ uniform in the ball, then ``steps`` times
    ``δ ← Π(δ + step · g/‖g‖)`` with ``g = ∇_δ CE`` normalised per token; text positions only.

    Gradients are taken with respect to δ alone (no parameter accumulates a gradient). Returns δ,
    detached, zero off the text positions."""
    mask = batch["text_mask"].unsqueeze(-1).to(embeds.dtype)
    clean = embeds.detach()
    delta = uniform_ball(clean.shape, radius, clean.device) * mask
    for _ in range(steps):
        delta.requires_grad_(True)
        ce = F.cross_entropy(model(batch, inputs_embeds=clean + delta).logits, batch["labels"])
        (grad,) = torch.autograd.grad(ce, delta)
        grad = F.normalize(grad, dim=-1, eps=1e-12) * mask
        delta = project(delta.detach() + step * grad, radius) * mask
    return delta.detach()


def hotflip_ids(
    input_ids: torch.Tensor,
    embeds: torch.Tensor,
    grad: torch.Tensor,
    table: torch.Tensor,
    text_mask: torch.Tensor,
    counts: torch.Tensor,
    allowed: torch.Tensor,
    chunk: int = 256,
) -> torch.Tensor:
    """HotFlip substitutions (choice): first-order gain ``⟨E[v] − e(x_i), g_i⟩`` of putting token v at
    text position i; per sequence n the ``counts[n]`` (position, token) pairs with the largest gain,
    at most one per position (so: the ``counts[n]`` positions whose best token gains most). Only
    tokens with ``allowed[v]`` are candidates (never special tokens); the current token is excluded,
    so every pick changes the input. Gains are computed in fp32 (autocast off), ``chunk`` rows at a
    time."""
    with torch.autocast(input_ids.device.type, enabled=False):
        embeds, grad, table = embeds.float(), grad.float(), table.float()
        n_seq, length = input_ids.shape
        flat_grad = grad.reshape(n_seq * length, -1)
        base_gain = (embeds.reshape(n_seq * length, -1) * flat_grad).sum(-1)
        flat_ids = input_ids.reshape(-1)
        best_gain = torch.empty(n_seq * length, dtype=table.dtype, device=table.device)
        best_token = torch.empty(n_seq * length, dtype=torch.long, device=table.device)
        for start in range(0, n_seq * length, chunk):
            rows = slice(start, start + chunk)
            gain = flat_grad[rows] @ table.T - base_gain[rows, None]
            gain = gain.masked_fill(~allowed, -math.inf)
            gain.scatter_(1, flat_ids[rows, None], -math.inf)
            best_gain[rows], best_token[rows] = gain.max(dim=1)
        best_gain = best_gain.view(n_seq, length).masked_fill(~text_mask, -math.inf)
        order = best_gain.argsort(dim=1, descending=True, stable=True)
        rank = torch.empty_like(order).scatter_(
            1, order, torch.arange(length, device=order.device).expand_as(order)
        )
        chosen = (rank < counts[:, None]) & text_mask
        return torch.where(chosen, best_token.view(n_seq, length), input_ids)


class PTPObjective(Objective):
    """``CE(x) + λ·CE(x̃)``; subclasses define x̃ in ``perturb``."""

    family = "ptp"
    separable = True
    space: ClassVar[str] = "emb"  # "emb": perturb returns input embeddings; "text": input ids
    input_grad: ClassVar[bool] = False  # whether perturb needs ∇_{e(x)} CE of the clean pass
    config: PTPConfig

    @classmethod
    def trainable_parameters(cls, config: ObjectiveConfig, hidden: int) -> int:
        """None of its own: the perturbation is drawn or computed, never trained."""
        return 0

    def __init__(self, config: PTPConfig, model: PromptModel) -> None:
        super().__init__(config, model)
        self.rms = embedding_rms(model)
        self.dim = model.backbone.get_input_embeddings().weight.shape[1]

    @abstractmethod
    def perturb(
        self, model: PromptModel, batch: Batch, embeds: torch.Tensor, ce: torch.Tensor
    ) -> torch.Tensor:
        """x̃ from the clean word embeddings ``embeds`` and the clean loss ``ce`` (embeddings or ids)."""
        ...

    def loss(self, model: PromptModel, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        embeds = model.embed(batch["input_ids"])
        if self.input_grad:
            embeds.requires_grad_(True)
        ce = F.cross_entropy(model(batch, inputs_embeds=embeds).logits, batch["labels"])
        perturbed = self.perturb(model, batch, embeds, ce)
        if self.space == "emb":
            logits = model(batch, inputs_embeds=perturbed).logits
        else:
            logits = model({**batch, "input_ids": perturbed}).logits
        ce_perturbed = F.cross_entropy(logits, batch["labels"])
        loss = ce + self.config.weight * ce_perturbed
        return loss, {
            "ce": ce.item(),
            "ce_perturbed": ce_perturbed.item(),
            "extra_passes": float(self.passes(self.config).extra),
        }


@OBJECTIVES.register("ptp-rn-emb")
class RandomEmbedding(PTPObjective):
    """PTP-RN in embedding space: Gaussian noise ``N(0, (σ·rms(E))²)`` on each text-token coordinate."""

    name = "ptp-rn-emb"
    config_class = RandomEmbeddingConfig
    config: RandomEmbeddingConfig

    @classmethod
    def passes(cls, config: ObjectiveConfig) -> Passes:
        """The clean and the perturbed pass, each with its backward."""
        return Passes(2, 2, 2, separable=cls.separable)

    def perturb(
        self, model: PromptModel, batch: Batch, embeds: torch.Tensor, ce: torch.Tensor
    ) -> torch.Tensor:
        mask = batch["text_mask"].unsqueeze(-1).to(embeds.dtype)
        return embeds + torch.randn_like(embeds) * (self.config.sigma * self.rms) * mask


@OBJECTIVES.register("ptp-adv-emb")
class AdversarialEmbedding(PTPObjective):
    """PTP-ADV in embedding space: PGD (see ``pgd_delta``). Step-size convention: radius
    ``ε·rms(E)·√d`` and step length ``α·rms(E)·√d`` per token, so ε and α are per-coordinate RMS
    sizes in units of rms(E); the ascent direction is the per-token unit gradient."""

    name = "ptp-adv-emb"
    config_class = AdversarialEmbeddingConfig
    config: AdversarialEmbeddingConfig

    @classmethod
    def passes(cls, config: AdversarialEmbeddingConfig) -> Passes:  # type: ignore[override]
        """K ascent steps, then the clean and the perturbed pass, each with its backward."""
        return Passes(config.steps + 2, config.steps + 2, 2, separable=cls.separable)

    def perturb(
        self, model: PromptModel, batch: Batch, embeds: torch.Tensor, ce: torch.Tensor
    ) -> torch.Tensor:
        unit = self.rms * math.sqrt(self.dim)
        delta = pgd_delta(
            model, batch, embeds, self.config.epsilon * unit, self.config.step_size * unit, self.config.steps
        )
        return embeds + delta


@OBJECTIVES.register("ptp-rn-text")
class RandomText(PTPObjective):
    """PTP-RN in text space: each text token becomes the mask token with probability p (a uniformly
    drawn non-special vocabulary token when the tokenizer has no mask token)."""

    name = "ptp-rn-text"
    space = "text"
    config_class = RandomTextConfig
    config: RandomTextConfig

    def __init__(self, config: RandomTextConfig, model: PromptModel) -> None:
        super().__init__(config, model)
        self.mask_token_id = model.mask_token_id
        candidates = None
        if self.mask_token_id is None:
            special = set(model.special_token_ids)
            candidates = torch.tensor([i for i in range(model.vocab_size) if i not in special])
        self.register_buffer("candidates", candidates, persistent=False)

    @classmethod
    def passes(cls, config: ObjectiveConfig) -> Passes:
        """The clean and the perturbed pass, each with its backward."""
        return Passes(2, 2, 2, separable=cls.separable)

    def perturb(
        self, model: PromptModel, batch: Batch, embeds: torch.Tensor, ce: torch.Tensor
    ) -> torch.Tensor:
        ids = batch["input_ids"]
        replace = (torch.rand(ids.shape, device=ids.device) < self.config.p) & batch["text_mask"]
        if self.mask_token_id is not None:
            return ids.masked_fill(replace, self.mask_token_id)
        drawn = self.candidates[torch.randint(len(self.candidates), ids.shape, device=ids.device)]
        return torch.where(replace, drawn, ids)


@OBJECTIVES.register("ptp-adv-text")
class AdversarialText(PTPObjective):
    """PTP-ADV in text space: HotFlip substitutions (see ``hotflip_ids``) from ``g = ∇_{e(x)} CE`` of
    the clean pass, k = ⌈fraction·(text tokens of the sequence)⌉."""

    name = "ptp-adv-text"
    space = "text"
    input_grad = True
    config_class = AdversarialTextConfig
    config: AdversarialTextConfig

    def __init__(self, config: AdversarialTextConfig, model: PromptModel) -> None:
        super().__init__(config, model)
        rows = model.backbone.get_input_embeddings().weight.shape[0]
        allowed = torch.arange(rows) < model.vocab_size
        allowed[list(model.special_token_ids)] = False
        self.register_buffer("allowed", allowed, persistent=False)

    @classmethod
    def passes(cls, config: ObjectiveConfig) -> Passes:
        """The clean pass, ∇_{e(x)} CE (one backward), the perturbed pass, and the loss's backward through
        both; HotFlip's vocabulary products."""
        return Passes(2, 3, 2, separable=cls.separable, hotflip=True)

    def perturb(
        self, model: PromptModel, batch: Batch, embeds: torch.Tensor, ce: torch.Tensor
    ) -> torch.Tensor:
        (grad,) = torch.autograd.grad(ce, embeds, retain_graph=True)
        text_mask = batch["text_mask"]
        counts = torch.ceil(self.config.fraction * text_mask.sum(dim=1).double() - 1e-9).long()
        table = model.backbone.get_input_embeddings().weight.detach()
        with torch.no_grad():
            return hotflip_ids(
                batch["input_ids"], embeds.detach(), grad, table, text_mask, counts, self.allowed
            )
