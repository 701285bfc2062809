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
# No run store unless a test gives one: every other test trains what it tests (tests/test_run_store.py and the
# end-to-end test's queue check give it a folder of their own).
os.environ["PROMPTTUNE_RUN_STORE"] = "off"

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


# Text the tiny tokenizers below are trained on: the hand-made examples of the tests, the CB and COPA task
# descriptions and label words, and every lower-case letter, digit and common punctuation mark.
TOKENIZER_CORPUS = [
    "The cat sat on the mat. A cat sat. It rained all day long in the city. It was sunny.",
    "He might come. He came. The glass fell, so it broke; so it sang! She was tired because she ran.",
    "Decide whether the premise entails, contradicts or is neutral towards the hypothesis.",
    "Choose the more plausible cause or effect of the premise? yes no maybe x a b c",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 3 4 5 6 7 8 9 . , ; : ! ? ' \" ( ) -",
]


def _save(model: object, tokenizer: object, path: Path) -> str:
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised 2-layer RoBERTa (hidden 32, 256 positions after the padding offset) with a
    tiny byte-level BPE tokenizer (``<s>``, ``</s>``, ``<pad>`` = 1, ``<mask>``; no token types)."""
    import json

    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's ids 0..4
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(TOKENIZER_CORPUS, trainer)
    state = json.loads(bpe.to_str())["model"]
    tokenizer = RobertaTokenizer(vocab=state["vocab"], merges=[tuple(m) for m in state["merges"]])
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=256 + tokenizer.pad_token_id + 1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        type_vocab_size=1,
    )
    torch.manual_seed(0)
    model = RobertaModel(config, add_pooling_layer=False)
    return _save(model, tokenizer, tmp_path_factory.mktemp("tiny-roberta"))


@pytest.fixture(scope="session")
def tiny_albert(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised 2-layer ALBERT (word embeddings 16 wide, hidden 32) with a tiny Unigram
    (SentencePiece-style) tokenizer (``[CLS]``, ``[SEP]``, ``<pad>`` = 0, ``[MASK]``)."""
    import json

    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import AlbertConfig, AlbertModel, AlbertTokenizer

    unigram = Tokenizer(models.Unigram())
    unigram.normalizer = normalizers.Lowercase()
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    special = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]  # AlbertTokenizer's ids 0..4
    trainer = trainers.UnigramTrainer(
        vocab_size=160,
        special_tokens=special,
        unk_token="<unk>",
        initial_alphabet=list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"()-"),
        show_progress=False,
    )
    unigram.train_from_iterator(TOKENIZER_CORPUS, trainer)
    vocab = [(piece, score) for piece, score in json.loads(unigram.to_str())["model"]["vocab"]]
    tokenizer = AlbertTokenizer(vocab=vocab)
    config = AlbertConfig(
        vocab_size=len(tokenizer),
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    torch.manual_seed(0)
    model = AlbertModel(config, add_pooling_layer=False)
    return _save(model, tokenizer, tmp_path_factory.mktemp("tiny-albert"))
