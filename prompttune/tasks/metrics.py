"""Official SuperGLUE metrics, each a fraction in [0, 1].

The plain functions score lists of class indices or answer strings; the ``*_metrics`` functions are
the tasks' ``metric_fn`` (examples and predicted indices in, ``{metric name: value}`` out).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

from prompttune.errors import PromptTuneError
from prompttune.tasks.base import Example


def _check_lengths(golds: Sequence[object], preds: Sequence[object]) -> None:
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold labels but {len(preds)} predictions")
    if not golds:
        raise ValueError("no examples to score")


def accuracy(golds: Sequence[int], preds: Sequence[int]) -> float:
    """Share of predictions equal to the gold label."""
    _check_lengths(golds, preds)
    return sum(g == p for g, p in zip(golds, preds, strict=True)) / len(golds)


def binary_f1(golds: Sequence[int], preds: Sequence[int], positive: int = 1) -> float:
    """F1 of the ``positive`` class; 0 when it has neither gold nor predicted members."""
    _check_lengths(golds, preds)
    tp = sum(g == positive and p == positive for g, p in zip(golds, preds, strict=True))
    n_pred = sum(p == positive for p in preds)
    n_gold = sum(g == positive for g in golds)
    return 2 * tp / (n_pred + n_gold) if n_pred + n_gold else 0.0


def f1_macro(golds: Sequence[int], preds: Sequence[int], num_classes: int) -> float:
    """Mean per-class F1 over all ``num_classes`` classes (CB's official F1: the SuperGLUE baseline,
    jiant, averages one F1 tracker per class, each 0 when undefined)."""
    return sum(binary_f1(golds, preds, positive=c) for c in range(num_classes)) / num_classes


def multirc_f1a_em(
    golds: Sequence[int], preds: Sequence[int], groups: Sequence[str | None]
) -> tuple[float, float]:
    """MultiRC (official): F1a = F1 of the "true" class (1) over all answer options; EM = share of
    questions (``groups``) whose answer options are all predicted right."""
    f1a = binary_f1(golds, preds, positive=1)
    right: dict[str | None, bool] = {}
    for gold, pred, group in zip(golds, preds, groups, strict=True):
        right[group] = right.get(group, True) and gold == pred
    return f1a, sum(right.values()) / len(right)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 / ReCoRD official normalisation: lowercase, drop punctuation, drop the articles
    a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    """Bag-of-tokens F1 between the normalised strings (SQuAD v1.1 / ReCoRD official)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def record_f1_em(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> tuple[float, float]:
    """ReCoRD (official): per query the max token F1 / EM over its gold answers, averaged over queries."""
    _check_lengths(answers, predictions)
    f1 = em = 0.0
    for prediction, golds in zip(predictions, answers, strict=True):
        if not golds:
            raise ValueError("a ReCoRD query without gold answers cannot be scored")
        f1 += max(token_f1(prediction, gold) for gold in golds)
        em += max(exact_match(prediction, gold) for gold in golds)
    return f1 / len(answers), em / len(answers)


def _golds(examples: Sequence[Example]) -> list[int]:
    for example in examples:
        if example.label is None:
            raise PromptTuneError(f"example {example.guid} has no label; unlabelled data cannot be scored")
    return [example.label for example in examples]  # type: ignore[misc]


def accuracy_metrics(examples: Sequence[Example], predictions: Sequence[int]) -> dict[str, float]:
    return {"acc": accuracy(_golds(examples), predictions)}


def cb_metrics(examples: Sequence[Example], predictions: Sequence[int]) -> dict[str, float]:
    golds = _golds(examples)
    return {"acc": accuracy(golds, predictions), "f1_macro": f1_macro(golds, predictions, num_classes=3)}


def multirc_metrics(examples: Sequence[Example], predictions: Sequence[int]) -> dict[str, float]:
    groups = [example.group for example in examples]
    f1a, em = multirc_f1a_em(_golds(examples), predictions, groups)
    return {"f1a": f1a, "em": em}


def record_metrics(examples: Sequence[Example], predictions: Sequence[int]) -> dict[str, float]:
    """Scores ``meta["candidates"][prediction]`` against ``meta["answers"]``; the label is not used."""
    _check_lengths(examples, predictions)
    for example in examples:
        if not example.meta.get("answers"):
            raise PromptTuneError(f"example {example.guid} has no gold answers; it cannot be scored")
    texts = [example.meta["candidates"][pred] for example, pred in zip(examples, predictions, strict=True)]
    f1, em = record_f1_em(texts, [example.meta["answers"] for example in examples])
    return {"f1": f1, "em": em}
