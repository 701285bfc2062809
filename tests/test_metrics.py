"""Metrics on cases computed by hand."""

from __future__ import annotations

import pytest

from prompttune.errors import PromptTuneError
from prompttune.tasks import Example, get_task
from prompttune.tasks.metrics import (
    accuracy,
    binary_f1,
    exact_match,
    f1_macro,
    multirc_f1a_em,
    normalize_answer,
    record_f1_em,
    token_f1,
)


def test_accuracy() -> None:
    assert accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
    with pytest.raises(ValueError):
        accuracy([1, 0], [1])


def test_binary_f1_of_positive_class() -> None:
    # tp = 1, predicted positives = 2, gold positives = 3: F1 = 2·1 / (2 + 3)
    assert binary_f1([1, 1, 1, 0], [1, 0, 0, 1]) == pytest.approx(0.4)
    assert binary_f1([0, 0], [0, 0]) == 0.0


def test_cb_macro_f1_by_hand() -> None:
    golds = [0, 0, 1, 1, 2, 2]
    preds = [0, 1, 1, 1, 0, 2]
    # class 0: tp 1, pred 2, gold 2 -> 1/2; class 1: tp 2, pred 3, gold 2 -> 4/5; class 2: tp 1, pred 1,
    # gold 2 -> 2/3
    assert f1_macro(golds, preds, num_classes=3) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # A class absent from gold and predictions still counts (as 0): the mean is over all three classes.
    assert f1_macro([0, 0], [0, 0], num_classes=3) == pytest.approx(1 / 3)


def test_cb_metric_fn_and_score() -> None:
    cb = get_task("CB")
    examples = [
        Example(guid=f"x-{i}", text_a="p", text_b="h", label=g) for i, g in enumerate([0, 0, 1, 1, 2, 2])
    ]
    metrics = cb.compute_metrics(examples, [0, 1, 1, 1, 0, 2])
    assert metrics["acc"] == pytest.approx(4 / 6)
    assert metrics["f1_macro"] == pytest.approx(0.655555, abs=1e-5)
    assert cb.score(metrics) == pytest.approx((4 / 6 + 0.655555) / 2, abs=1e-5)


def test_multirc_f1a_em_two_questions() -> None:
    golds = [1, 0, 1, 0, 1]
    preds = [1, 0, 0, 0, 1]
    groups = ["q1", "q1", "q1", "q2", "q2"]
    f1a, em = multirc_f1a_em(golds, preds, groups)
    # positives: gold 3, predicted 2, tp 2 -> F1a = 4/5; q1 has a wrong option, q2 is all right -> EM 1/2
    assert f1a == pytest.approx(0.8)
    assert em == 0.5


def test_multirc_metric_fn_uses_groups() -> None:
    examples = [
        Example(guid=f"v-{i}", text_a="p", text_b="q a", label=g, group=q)
        for i, (g, q) in enumerate([(1, "a"), (0, "a"), (1, "b")])
    ]
    assert get_task("MultiRC").compute_metrics(examples, [1, 1, 1]) == {"f1a": pytest.approx(0.8), "em": 0.5}


def test_squad_normalisation() -> None:
    assert normalize_answer("The  Blues!") == "blues"
    assert normalize_answer("An apple, the pear and a fig.") == "apple pear and fig"
    assert normalize_answer("Theatre") == "theatre"  # articles only as whole words


def test_token_f1_and_em() -> None:
    assert token_f1("Diego Costa", "Costa") == pytest.approx(2 / 3)  # precision 1/2, recall 1
    assert token_f1("Costa", "Zouma") == 0.0
    assert exact_match("the Blues", "Blues.") == 1.0
    assert exact_match("Chelsea FC", "Chelsea") == 0.0


def test_record_max_over_golds_then_mean_over_queries() -> None:
    f1, em = record_f1_em(["Costa", "Chelsea FC"], [["Diego Costa", "costa."], ["Chelsea"]])
    # query 1: best gold "costa." matches exactly; query 2: F1 2/3, EM 0
    assert f1 == pytest.approx((1 + 2 / 3) / 2)
    assert em == 0.5


def test_record_metric_fn_scores_candidate_texts() -> None:
    example = Example(
        guid="t-1-1",
        text_a="passage",
        label=1,
        choices=("x A", "x B"),
        meta={"candidates": ["Diego Costa", "Costa"], "answers": ["Costa"]},
    )
    metrics = get_task("ReCoRD").compute_metrics([example, example], [0, 1])
    assert metrics == {"f1": pytest.approx((2 / 3 + 1) / 2), "em": 0.5}


def test_unlabelled_examples_cannot_be_scored() -> None:
    with pytest.raises(PromptTuneError, match="u-0 has no label"):
        get_task("RTE").compute_metrics([Example(guid="u-0", text_a="p", text_b="h")], [0])
    with pytest.raises(PromptTuneError, match="no gold answers"):
        get_task("ReCoRD").compute_metrics(
            [Example(guid="u-1", text_a="p", choices=("a",), meta={"candidates": ["a"], "answers": []})], [0]
        )
