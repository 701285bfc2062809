"""The trainable model: frozen backbone + prompt base + linear head.

Classification: one logit per class from the pooled representation. Multiple choice (COPA, ReCoRD):
every (context, choice) pair is one sequence scored by a 1-logit head; a softmax across the choices
of an example (METHODS.md). The objective asks the model for logits; it may pass its own input
embeddings (perturbations) or switch the prompt off (representations without prompt).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prompttune.bases import BASES, PromptBase
from prompttune.bases.base import plain_inputs
from prompttune.batches import Batch
from prompttune.config import HeadConfig, RunConfig
from prompttune.tasks.base import Task


@dataclass
class ModelOutput:
    logits: torch.Tensor  # (B, classes) or (B, choices)
    pooled: torch.Tensor  # (N, d): the head's input, N = B·choices for multiple choice


def label_word_rows(
    embeddings: torch.Tensor, tokenizer: PreTrainedTokenizerBase, words: tuple[str, ...]
) -> torch.Tensor:
    """Mean word embedding of each label word's sub-tokens (head init ``label_words``; InfoPrompt code)."""
    rows = []
    for word in words:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        rows.append(embeddings[ids].mean(dim=0))
    return torch.stack(rows)


class PromptModel(nn.Module):
    def __init__(
        self,
        backbone: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        base: PromptBase,
        task: Task,
        head: HeadConfig,
        backbone_dropout: bool,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.base = base
        self.task = task
        self.mask_token_id: int | None = tokenizer.mask_token_id
        self.special_token_ids: tuple[int, ...] = tuple(tokenizer.all_special_ids)
        self.vocab_size = len(tokenizer)
        self.pooling = head.pooling
        self.backbone_dropout = backbone_dropout
        hidden = backbone.config.hidden_size
        self.head = nn.Linear(hidden, task.num_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        if head.init == "label_words" and task.kind == "classification":
            with torch.no_grad():
                table = backbone.get_input_embeddings().weight
                self.head.weight.copy_(label_word_rows(table, tokenizer, task.label_words))

    @classmethod
    def build(
        cls, config: RunConfig, backbone: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, task: Task
    ) -> PromptModel:
        base = BASES.get(config.base)(config.prompt, backbone, tokenizer, task)
        return cls(backbone, tokenizer, base, task, config.head, config.train.backbone_dropout)

    def train(self, mode: bool = True) -> PromptModel:
        super().train(mode)
        self.backbone.train(mode and self.backbone_dropout)
        return self

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.backbone.get_input_embeddings()(input_ids)

    def encode(
        self, batch: Batch, inputs_embeds: torch.Tensor | None = None, use_prompt: bool = True
    ) -> torch.Tensor:
        """The pooled representation (the head's input) for every sequence of the batch."""
        if inputs_embeds is None:
            inputs_embeds = self.embed(batch["input_ids"])
        args = (inputs_embeds, batch["attention_mask"], batch.get("token_type_ids"))
        inputs = self.base(*args) if use_prompt else plain_inputs(*args)
        hidden = self.backbone(**inputs.kwargs).last_hidden_state
        if self.pooling == "cls":  # the input's first token, after any prompt placed before it
            first = inputs.input_mask.int().argmax(dim=1)
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]
        mask = inputs.input_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)

    def forward(
        self, batch: Batch, inputs_embeds: torch.Tensor | None = None, use_prompt: bool = True
    ) -> ModelOutput:
        pooled = self.encode(batch, inputs_embeds, use_prompt)
        logits = self.head(pooled).float()
        if "choice_mask" in batch:
            choice_mask = batch["choice_mask"]
            logits = logits.view(choice_mask.shape).masked_fill(~choice_mask, torch.finfo(torch.float32).min)
        return ModelOutput(logits=logits, pooled=pooled)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Every trainable tensor (prompt, head) by name, detached copies."""
        return {name: p.detach().clone() for name, p in self.named_parameters() if p.requires_grad}
