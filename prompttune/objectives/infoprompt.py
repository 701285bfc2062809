"""InfoPrompt (Wu et al. 2023; docs/methods.md#infoprompt): CE plus two InfoNCE mutual-information losses.

``L = CE + γ·L_head + β·L_rep`` with the critic ``s(a, b) = ⟨a, b⟩/√d`` (code, no temperature):

- ``L_head`` (code): positive ``s(mean_k p_k, h̄)``, ``h̄`` the mean of the head's weight rows; negatives
  ``s(e(x_j), h̄)`` for every non-pad input token of the example (``attention_mask``: special tokens such as
  ``[CLS]``/``[SEP]`` count, as in the code); ``−log softmax`` of the positive, averaged over the batch.
  Where word embeddings are narrower than the hidden size (ALBERT), they are first mapped to it by the
  backbone's own embedding→hidden layer, as the prompt vectors are (choice).
- ``L_rep`` (code, simplified): context ``c = W_c·mean_k p_k``; positive ``s(r⁺_i, c)`` with ``r⁺`` the
  head input computed with the prompt; negatives ``s(r⁻_j, c)`` for every example ``j`` of the batch, ``r⁻``
  the same representation without the prompt.
- Choices: ``W_c`` is a trainable d×d matrix initialised to the identity (created only when β > 0, so the
  ``infoprompt-head`` ablation has no parameter of its own). ``r⁻`` is computed once per example (keyed by
  ``example_index``, checked against the example's tokens), with the backbone in eval mode and without
  gradient, and cached on the objective (not saved). For multiple choice, an example is represented by its
  correct choice (its tokens for ``L_head``, its pooled representation for ``L_rep``).
- ``clamp`` (code: 2, off by default): each per-example InfoNCE loss is clamped at ``clamp`` from above.
- ``Contrast``: the critic's sign and the positive's index among the logits, (+1, 0) as in the paper; the
  MI-convergence study trains the other contrasts as negative controls (its checks must catch them).
- Logged: ``ce``, ``l_head``, ``l_rep`` (the terms as they enter the loss) and the InfoNCE bounds
  ``mi_head``, ``mi_rep`` = mean of ``log(N+1) − L`` (unclamped L; N the example's number of negatives).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from prompttune.backbone import embedding_to_hidden
from prompttune.errors import PromptTuneError
from prompttune.model import Batch, PromptModel
from prompttune.objectives.base import OBJECTIVES, Objective, ObjectiveConfig, Passes

_INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class InfoPromptConfig(ObjectiveConfig):
    """Weights of InfoPrompt's two InfoNCE losses (code: γ = 0.1, β = 0.2)."""

    gamma: float = field(default=0.1, metadata={"help": "weight γ of the head loss L_head (code: 0.1)"})
    beta: float = field(
        default=0.2, metadata={"help": "weight β of the representation loss L_rep (code: 0.2)"}
    )
    clamp: float | None = field(
        default=None,
        metadata={"help": "clamp each per-example InfoNCE loss at this value (code: 2); None: off"},
    )

    def __post_init__(self) -> None:
        for name in ("gamma", "beta"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number ≥ 0, got {value}")
        if self.clamp is not None and not (math.isfinite(self.clamp) and self.clamp > 0):
            raise ValueError(f"clamp must be a finite number > 0 or null, got {self.clamp}")


@dataclass(frozen=True)
class InfoPromptHeadConfig(InfoPromptConfig):
    """Ablation ``infoprompt-head``: the head loss only (β fixed at 0)."""

    beta: float = field(default=0.0, init=False, metadata={"help": "fixed at 0 by this ablation"})


@dataclass(frozen=True)
class InfoPromptRepConfig(InfoPromptConfig):
    """Ablation ``infoprompt-rep``: the representation loss only (γ fixed at 0)."""

    gamma: float = field(default=0.0, init=False, metadata={"help": "fixed at 0 by this ablation"})


@dataclass(frozen=True)
class Contrast:
    """How an InfoNCE loss contrasts: ``sign`` multiplies the critic, ``positive`` is the index of the
    term the loss rewards among [positive, negatives...]. The paper's contrast is ``Contrast()``."""

    sign: float = 1.0
    positive: int = 0


PAPER = Contrast()


def critic(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``s(a, b) = ⟨a, b⟩/√d`` over the last dimension (code)."""
    return (a * b).sum(-1) / math.sqrt(a.shape[-1])


def info_nce(
    positive: torch.Tensor,
    negatives: torch.Tensor,
    mask: torch.Tensor | None = None,
    contrast: Contrast = PAPER,
) -> torch.Tensor:
    """Per-example ``−log softmax(positive among [positive, negatives])``: positive (B,), negatives (B, N),
    mask (B, N) marking the negatives that count."""
    logits = contrast.sign * torch.cat([positive.unsqueeze(1), negatives], dim=1)
    if mask is not None:
        keep = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
        logits = logits.masked_fill(~keep, float("-inf"))
    return -torch.log_softmax(logits, dim=1)[:, contrast.positive]


def mi_bound(losses: torch.Tensor, n_negatives: torch.Tensor | int) -> torch.Tensor:
    """The InfoNCE lower bound on mutual information, ``log(N + 1) − L`` per example."""
    return torch.log(torch.as_tensor(n_negatives, dtype=losses.dtype, device=losses.device) + 1) - losses


def head_loss(
    prompt: torch.Tensor,
    head_weight: torch.Tensor,
    token_embeds: torch.Tensor,
    token_mask: torch.Tensor,
    contrast: Contrast = PAPER,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``L_head`` per example and its number of negatives. prompt (n, d), head_weight (C, d), token_embeds
    (B, T, d), token_mask (B, T) bool (the non-pad tokens)."""
    h = head_weight.mean(dim=0)
    positive = critic(prompt.mean(dim=0), h).expand(token_embeds.shape[0])
    return info_nce(positive, critic(token_embeds, h), token_mask, contrast), token_mask.sum(dim=1)


def rep_loss(
    prompt: torch.Tensor,
    w_c: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    contrast: Contrast = PAPER,
) -> torch.Tensor:
    """``L_rep`` per example: positives (B, d) = r⁺ with prompt, negatives (B', d) = r⁻ without prompt,
    each example contrasted with all B' negatives; context ``c = W_c·mean_k p_k``."""
    c = w_c @ prompt.mean(dim=0)
    scores = critic(negatives, c).unsqueeze(0).expand(positives.shape[0], -1)
    return info_nce(critic(positives, c), scores, contrast=contrast)


def example_rows(batch: Batch) -> torch.Tensor:
    """The sequence that stands for each example: itself, or its correct choice (multiple choice; choice)."""
    labels = batch["labels"]
    rows = torch.arange(labels.shape[0], device=labels.device)
    if "choice_mask" in batch:
        return rows * batch["choice_mask"].shape[1] + labels
    return rows


@dataclass
class MITerms:
    """The InfoNCE terms of a batch: mean losses as they enter the objective (None when weighted 0)."""

    l_head: torch.Tensor | None
    l_rep: torch.Tensor | None
    logs: dict[str, float]


@OBJECTIVES.register("infoprompt")
class InfoPrompt(Objective):
    """``CE + γ·L_head + β·L_rep`` (see the module docstring). Only terms with a weight > 0 are computed."""

    name = "infoprompt"
    family = "infoprompt"
    needs_prompt = True
    config_class = InfoPromptConfig
    config: InfoPromptConfig

    def __init__(self, config: InfoPromptConfig, model: PromptModel) -> None:
        super().__init__(config, model)
        prompt = model.base.prompt_vectors()
        if prompt is None:
            raise PromptTuneError(
                f"objective {self.name} needs a prompt; base {model.base.name!r} has none (use pt or pt2)"
            )
        d = prompt.shape[-1]
        self.w_c: nn.Parameter | None = nn.Parameter(torch.eye(d)) if config.beta > 0 else None
        self.contrast = PAPER
        self._negatives: dict[int, tuple[int, torch.Tensor]] = {}  # example_index → (token hash, r⁻)

    @classmethod
    def passes(cls, config: InfoPromptConfig) -> Passes:  # type: ignore[override]
        """One forward and its backward; with β > 0, ``L_rep`` contrasts every example of a batch with the
        others (not separable) and each example's ``r⁻`` costs one forward without prompt, once."""
        return Passes(1, 1, 1, separable=config.beta == 0, negatives=config.beta > 0)

    @classmethod
    def trainable_parameters(cls, config: InfoPromptConfig, hidden: int) -> int:  # type: ignore[override]
        """``W_c`` (d × d), which exists only with β > 0."""
        return hidden * hidden if config.beta > 0 else 0

    def loss(self, model: PromptModel, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        out = model(batch)
        ce = F.cross_entropy(out.logits, batch["labels"])
        terms = self.mi_terms(model, batch, out.pooled)
        loss = ce
        if terms.l_head is not None:
            loss = loss + self.config.gamma * terms.l_head
        if terms.l_rep is not None:
            loss = loss + self.config.beta * terms.l_rep
        return loss, {"ce": ce.item(), **terms.logs}

    def mi_terms(self, model: PromptModel, batch: Batch, pooled: torch.Tensor | None = None) -> MITerms:
        """``L_head`` (if γ > 0) and ``L_rep`` (if β > 0) of a batch, unweighted; ``pooled`` is the model's
        head input with prompt (computed here when not given)."""
        rows = example_rows(batch)
        prompt = model.base.prompt_vectors().float()
        logs: dict[str, float] = {}
        l_head = l_rep = None
        if self.config.gamma > 0:
            to_hidden = embedding_to_hidden(
                model.backbone
            )  # per call: never stored (no backbone weights in state)
            embeds = to_hidden(model.embed(batch["input_ids"][rows])).float()
            losses, n = head_loss(
                prompt, model.head.weight.float(), embeds, batch["attention_mask"][rows].bool(), self.contrast
            )
            l_head = self._reduce(losses)
            logs |= {"l_head": l_head.item(), "mi_head": mi_bound(losses.detach(), n).mean().item()}
        if self.w_c is not None:
            if pooled is None:
                pooled = model.encode(batch)
            negatives = self.negatives(model, batch, rows)
            losses = rep_loss(prompt, self.w_c, pooled[rows].float(), negatives, self.contrast)
            l_rep = self._reduce(losses)
            logs |= {"l_rep": l_rep.item(), "mi_rep": mi_bound(losses.detach(), len(negatives)).mean().item()}
        return MITerms(l_head=l_head, l_rep=l_rep, logs=logs)

    def _reduce(self, losses: torch.Tensor) -> torch.Tensor:
        if self.config.clamp is not None:
            losses = losses.clamp(max=self.config.clamp)
        return losses.mean()

    def negatives(self, model: PromptModel, batch: Batch, rows: torch.Tensor) -> torch.Tensor:
        """r⁻ of each example (B, d): cached per ``example_index``; an example not yet cached (or whose
        tokens changed under the same index) costs one forward pass without prompt, in eval mode."""
        ids, mask = batch["input_ids"][rows], batch["attention_mask"][rows].bool()
        keys = batch["example_index"].tolist()
        hashes = [hash(tuple(seq[keep].tolist())) for seq, keep in zip(ids, mask, strict=True)]
        missing = [
            i
            for i, (key, h) in enumerate(zip(keys, hashes, strict=True))
            if self._negatives.get(key, (None,))[0] != h
        ]
        if missing:
            selected = rows[missing]
            sub = {name: batch[name][selected] for name in _INPUT_KEYS if name in batch}
            was_training = model.backbone.training
            model.backbone.eval()
            try:
                with torch.no_grad():
                    reps = model.encode(sub, use_prompt=False).float()
            finally:
                model.backbone.train(was_training)
            for j, i in enumerate(missing):
                self._negatives[keys[i]] = (hashes[i], reps[j])
        return torch.stack([self._negatives[key][1] for key in keys])


@OBJECTIVES.register("infoprompt-head")
class InfoPromptHead(InfoPrompt):
    """Ablation: ``CE + γ·L_head`` (β = 0, no W_c)."""

    name = "infoprompt-head"
    ablation_of = "infoprompt"
    separable = True  # L_head's negatives are the example's own tokens; L_rep (batch negatives) is off
    config_class = InfoPromptHeadConfig


@OBJECTIVES.register("infoprompt-rep")
class InfoPromptRep(InfoPrompt):
    """Ablation: ``CE + β·L_rep`` (γ = 0)."""

    name = "infoprompt-rep"
    ablation_of = "infoprompt"
    config_class = InfoPromptRepConfig
