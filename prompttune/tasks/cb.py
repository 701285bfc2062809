"""CommitmentBank (de Marneffe et al. 2019): three-way entailment; text_a = premise,
text_b = hypothesis; accuracy and macro-F1 over the three classes (official)."""

from __future__ import annotations

from prompttune.tasks.base import Task, register_task
from prompttune.tasks.common import pair_reader, superglue_files, superglue_sizes
from prompttune.tasks.metrics import cb_metrics

LABELS = ("entailment", "contradiction", "neutral")


register_task(
    Task(
        name="CB",
        version=1,
        kind="classification",
        labels=LABELS,
        label_words=("yes", "no", "maybe"),
        metric_names=("acc", "f1_macro"),
        reader=pair_reader("premise", "hypothesis", LABELS),
        metric_fn=cb_metrics,
        files=superglue_files("CB"),
        sizes=superglue_sizes(train=250, val=56),
        description="Decide whether the premise entails, contradicts or is neutral towards the hypothesis.",
    )
)
