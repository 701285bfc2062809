"""The trainable model: frozen backbone + prompt base + linear head.

Classification: one logit per class from the pooled representation. Multiple choice (COPA, ReCoRD):
every (context, choice) pair is one sequence scored by a 1-logit head; a softmax across the choices
of an example (docs/methods.md#the-task-head). The objective asks the model for logits; it may pass its
own input embeddings (perturbations) or switch the prompt off (representations without prompt).

Head init ``label_words`` (InfoPrompt code): each class's row is its label words' mean word embedding,
taken to the hidden size by the backbone's own embedding→hidden map where word embeddings are narrower
(ALBERT's ``encoder.embedding_hidden_mapping_in``, bias included; choice: the same map the backbone
applies to every input token, before its first layer; the identity elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase
from transformers.cache_utils import Cache, DynamicCache

from prompttune.backbone import embedding_to_hidden
from prompttune.bases import BASES, PromptBase
from prompttune.bases.base import BackboneInputs, plain_inputs
from prompttune.batches import Batch
from prompttune.schema import HeadConfig, RunConfig
from prompttune.tasks.base import Task

if TYPE_CHECKING:  # transformers' modeling module takes seconds to import: type hints only
    from transformers import PreTrainedModel


@dataclass
class ModelOutput:
    logits: torch.Tensor  # (B, classes) or (B, choices)
    pooled: torch.Tensor  # (N, d): the head's input, N = B·choices for multiple choice


def label_word_rows(
    embeddings: torch.Tensor, tokenizer: PreTrainedTokenizerBase, words: tuple[str, ...]
) -> torch.Tensor:
    """Mean word embedding of each label word's sub-tokens (head init ``label_words``; InfoPrompt code),
    in the embedding table's own width."""
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
                rows = label_word_rows(table, tokenizer, task.label_words)
                self.head.weight.copy_(embedding_to_hidden(backbone)(rows))

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

    def backbone_inputs(
        self, batch: Batch, inputs_embeds: torch.Tensor | None = None, use_prompt: bool = True
    ) -> BackboneInputs:
        """The backbone's keyword arguments for the batch, with this model's prompt (unless switched off)."""
        if inputs_embeds is None:
            inputs_embeds = self.embed(batch["input_ids"])
        args = (inputs_embeds, batch["attention_mask"], batch.get("token_type_ids"))
        return self.base(*args) if use_prompt else plain_inputs(*args)

    def pool(self, hidden: torch.Tensor, input_mask: torch.Tensor) -> torch.Tensor:
        """The head's input from the backbone's last hidden states (``head.pooling``)."""
        if self.pooling == "cls":  # the input's first token, after any prompt placed before it
            first = input_mask.int().argmax(dim=1)
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]
        mask = input_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)

    def scores(self, pooled: torch.Tensor, choice_mask: torch.Tensor | None) -> torch.Tensor:
        """Logits per class, or per choice (padding choices at the lowest float) for multiple choice."""
        logits = self.head(pooled).float()
        if choice_mask is not None:
            logits = logits.view(choice_mask.shape).masked_fill(~choice_mask, torch.finfo(torch.float32).min)
        return logits

    def encode(
        self, batch: Batch, inputs_embeds: torch.Tensor | None = None, use_prompt: bool = True
    ) -> torch.Tensor:
        """The pooled representation (the head's input) for every sequence of the batch."""
        inputs = self.backbone_inputs(batch, inputs_embeds, use_prompt)
        return self.pool(self.backbone(**inputs.kwargs).last_hidden_state, inputs.input_mask)

    def forward(
        self, batch: Batch, inputs_embeds: torch.Tensor | None = None, use_prompt: bool = True
    ) -> ModelOutput:
        pooled = self.encode(batch, inputs_embeds, use_prompt)
        return ModelOutput(logits=self.scores(pooled, batch.get("choice_mask")), pooled=pooled)

    def seed_means(self, per_example: torch.Tensor) -> torch.Tensor:
        """The batch mean of a per-example quantity (one seed; ``StackedModel`` gives one per seed)."""
        return per_example.mean()

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Every trainable tensor (prompt, head) by name, detached copies."""
        return {name: p.detach().clone() for name, p in self.named_parameters() if p.requires_grad}


def merge_inputs(parts: list[BackboneInputs]) -> BackboneInputs:
    """The backbone inputs of several models' rows as one batch: tensors concatenated along the batch
    dimension, deep-prompt caches layer by layer."""
    kwargs: dict[str, Any] = {}
    for key, first in parts[0].kwargs.items():
        if isinstance(first, Cache):
            cache = DynamicCache()
            for index in range(len(first.layers)):
                keys = torch.cat([part.kwargs[key].layers[index].keys for part in parts])
                values = torch.cat([part.kwargs[key].layers[index].values for part in parts])
                cache.update(keys, values, index)
            kwargs[key] = cache
        else:
            kwargs[key] = torch.cat([part.kwargs[key] for part in parts])
    return BackboneInputs(kwargs=kwargs, input_mask=torch.cat([part.input_mask for part in parts]))


MASKS = ("attention_mask", "token_type_ids")  # what a prompt base reads from the batch besides embeddings


class StackedModel(nn.Module):
    """S models of one grid cell (one per training seed) that share the frozen backbone, run as one:
    the batch holds the S seeds' batches one after another (equal sizes), each block gets its own
    model's prompt, the backbone runs once on all rows, and each block is pooled and scored by its
    own model's head. Only objectives marked ``stackable`` (no random draws, no coupling between
    examples) are given one; their per-seed losses come from ``seed_means``."""

    def __init__(self, models: list[PromptModel]) -> None:
        super().__init__()
        self.models = nn.ModuleList(models)
        self.backbone = models[0].backbone
        self.task = models[0].task

    def blocks(self, n_rows: int) -> list[slice]:
        size, rest = divmod(n_rows, len(self.models))
        if rest:
            raise ValueError(f"{n_rows} rows cannot be split into {len(self.models)} equal seed blocks")
        return [slice(i * size, (i + 1) * size) for i in range(len(self.models))]

    def forward(self, batch: Batch, inputs_embeds: torch.Tensor | None = None) -> ModelOutput:
        if inputs_embeds is None:
            inputs_embeds = self.models[0].embed(batch["input_ids"])
        rows = self.blocks(inputs_embeds.shape[0])
        parts = [
            model.backbone_inputs({key: batch[key][block] for key in MASKS if key in batch}, embeds)
            for model, block, embeds in zip(
                self.models, rows, inputs_embeds.tensor_split(len(rows)), strict=True
            )
        ]
        inputs = merge_inputs(parts)
        hidden = self.backbone(**inputs.kwargs).last_hidden_state
        choice_mask = batch.get("choice_mask")
        examples = self.blocks(len(batch["labels"]))
        pooled, logits = [], []
        for model, block, example_block in zip(self.models, rows, examples, strict=True):
            pooled.append(model.pool(hidden[block], inputs.input_mask[block]))
            logits.append(
                model.scores(pooled[-1], None if choice_mask is None else choice_mask[example_block])
            )
        return ModelOutput(logits=torch.cat(logits), pooled=torch.cat(pooled))

    def seed_means(self, per_example: torch.Tensor) -> torch.Tensor:
        """One mean per seed block: (S,)."""
        return per_example.view(len(self.models), -1).mean(dim=1)
