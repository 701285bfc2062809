"""Shared fixtures: offline environment, the data mirror, a tiny random BERT saved as a local backbone."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
# The tokenisation cache of the whole test session (and of the pipelines it runs) lives in a temp folder.
os.environ.setdefault("PROMPTTUNE_CACHE", tempfile.mkdtemp(prefix="prompttune-cache-"))

ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("PROMPTTUNE_DATA_MIRROR", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def mirror() -> Path:
    if not MIRROR.is_dir():
        pytest.fail(f"data mirror not found at {MIRROR}; set PROMPTTUNE_DATA_MIRROR")
    return MIRROR


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised 2-layer BERT (hidden 32) with MiniLM's tokenizer, saved to a local folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from prompttune.backbone import resolve_backbone

    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone("minilm"))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    torch.manual_seed(0)
    model = BertModel(config, add_pooling_layer=False)
    path = tmp_path_factory.mktemp("tiny-bert")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)
