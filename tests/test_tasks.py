"""Task declarations and readers: the real mirror files, exact formatting, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prompttune.errors import PromptTuneError
from prompttune.tasks import TASKS, Example, get_task
from prompttune.tasks.common import SOURCES

NAMES = ["BoolQ", "CB", "COPA", "MultiRC", "ReCoRD", "RTE", "SST-2", "WSC", "WiC"]


def read(mirror: Path, task: str, relative: str, split: str = "x") -> list[Example]:
    return get_task(task).read(mirror / relative, split)


def write(tmp_path: Path, rows: list[object], name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_registry_declarations() -> None:
    assert TASKS.names() == sorted(NAMES)
    for name in NAMES:
        task = get_task(name)
        assert task.name == name and task.version == 1 and task.description
        assert len(task.label_words) == len(task.labels)
        assert (task.kind == "multiple_choice") == (task.labels == ())
    for name in set(NAMES) - {"SST-2"}:
        assert get_task(name).files == {s: p.format(task=name) for s, p in SOURCES.items()}
    assert get_task("SST-2").files == {"full_train": "GLUE/SST-2/train.tsv", "val": "GLUE/SST-2/dev.tsv"}
    assert get_task("CB").labels == ("entailment", "contradiction", "neutral")
    assert get_task("CB").label_words == ("yes", "no", "maybe")
    with pytest.raises(PromptTuneError, match="unknown task 'cb'"):
        get_task("cb")


def test_every_mirrored_file_reads_with_labels(mirror: Path) -> None:
    read_any = 0
    for name in NAMES:
        task = get_task(name)
        for source, relative in task.files.items():
            if (mirror / relative).is_file():
                examples = task.read(mirror / relative, source)
                read_any += 1
                assert examples and all(e.label is not None for e in examples if name != "ReCoRD")
                assert len({e.guid for e in examples}) == len(examples)
    assert read_any == 27  # all but the ReCoRD val and the full train sets not mirrored


def test_counts_on_the_mirror(mirror: Path) -> None:
    assert len(read(mirror, "CB", "FewGLUE/CB/train.jsonl")) == 32
    assert len(read(mirror, "CB", "SuperGLUE/CB/val.jsonl")) == 56
    assert len(read(mirror, "RTE", "SuperGLUE/RTE/val.jsonl")) == 277
    dev = read(mirror, "SST-2", "GLUE/SST-2/dev.tsv", "val")
    assert len(dev) == 872 and dev[0].guid == "val-0"
    assert dev[0].text_a == "it 's a charming and often affecting journey ." and dev[0].label == 1
    copa = read(mirror, "COPA", "SuperGLUE/COPA/val.jsonl")
    assert len(copa) == 100 and all(len(e.choices) == 2 and e.label in (0, 1) for e in copa)


def test_boolq_json_booleans_map_to_labels(mirror: Path) -> None:
    first = read(mirror, "BoolQ", "FewGLUE/BoolQ/train.jsonl", "train")[0]
    assert first.guid == "train-7457" and first.label == 0  # "label": false
    assert first.text_b == "is ghost in the shell based on the anime"


def test_copa_choices_read_as_continuations(mirror: Path) -> None:
    cause, effect = read(mirror, "COPA", "FewGLUE/COPA/train.jsonl")[:2]
    assert cause.text_a == "The chandelier shattered on the floor."
    assert cause.choices == (
        "because the chandelier dropped from the ceiling.",
        "because the chandelier's lights flickered on and off.",
    )
    assert cause.label == 0
    assert effect.choices == ("so his stubble grew.", "so his stubble disappeared.") and effect.label == 1


def test_multirc_one_example_per_answer_option(mirror: Path) -> None:
    path = mirror / "FewGLUE/MultiRC/train.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    answers = [
        (row["idx"], q["idx"], a) for row in rows for q in row["passage"]["questions"] for a in q["answers"]
    ]
    examples = get_task("MultiRC").read(path, "train")
    assert len(examples) == len(answers) == 154
    assert [e.label for e in examples] == [a["label"] for _, _, a in answers]
    assert len({e.group for e in examples}) == 32
    first = examples[0]
    assert first.guid == "train-6-56-333" and first.group == "train-6-56"
    assert (
        first.text_b
        == "How does Jason react to the stranger who arrives with Susan? He welcomes him with open arm"
    )
    assert first.text_a.startswith("A stranger in town meets pretty young Susan")


def test_record_candidates_and_labels(mirror: Path) -> None:
    examples = read(mirror, "ReCoRD", "FewGLUE/ReCoRD/train.jsonl")
    assert len(examples) == 32
    for example in examples:
        candidates, answers = example.meta["candidates"], example.meta["answers"]
        assert len(candidates) == len(set(candidates)) == len(example.choices)
        assert example.label is not None and candidates[example.label] in answers
        assert "@highlight" not in example.text_a and "@placeholder" not in example.choices[0]
    first = examples[0]
    assert first.meta["candidates"][:5] == [
        "Hamish Mackay",
        "Diego Costa",
        "Kurt Zouma",
        "Chelsea",
        "Olimpija Ljubljana",
    ]
    assert first.label == 4 and first.meta["answers"] == ["Olimpija Ljubljana"]
    assert first.choices[4].endswith("the best thing was that Olimpija Ljubljana made it difficult.")
    assert "horror miss. Chelsea come from behind" in first.text_a


def test_wic_marks_the_target_word(mirror: Path) -> None:
    first = read(mirror, "WiC", "FewGLUE/WiC/train.jsonl")[0]
    assert (first.text_a, first.text_b, first.label) == (
        "You make me *feel* naked.",
        "She *felt* small and insignificant.",
        1,
    )


def test_wsc_marks_noun_phrase_and_pronoun(mirror: Path) -> None:
    first = read(mirror, "WSC", "FewGLUE/WSC/train.jsonl")[0]
    assert first.text_a == (
        "The actress used to be named Terpsichore , but she changed it to *Tina* a few years ago, "
        "because she figured #it# was easier to pronounce."
    )
    assert first.text_b is None and first.label == 1
    val = {e.guid: e.text_a for e in read(mirror, "WSC", "SuperGLUE/WSC/val.jsonl", "val")}
    # span2_index is one word early in the official file; the pronoun is the next word
    assert "iron *safe* . Some day they might want to use #it# , but" in val["val-42"]
    # the pronoun lies inside the noun phrase
    assert "Celeste , and *#their# mothers* are very worried." in val["val-95"]
    train = {e.guid: e.text_a for e in read(mirror, "WSC", "SuperGLUE/WSC/train.jsonl", "train")}
    assert train["train-433"].startswith("*Emma*'s mother had died long ago, and #her# place")  # possessive


# --- bad input -------------------------------------------------------------------------------------


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"premise": "p", "hypothesis": "h", "label": "entailment", "idx": 0}\n{"premise": \n')
    with pytest.raises(PromptTuneError, match=f"{path}:2: invalid JSON"):
        get_task("CB").read(path, "train")


def test_missing_field_names_field_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, [{"premise": "p", "hypothesis": "h", "idx": 0}, {"hypothesis": "h", "idx": 1}])
    with pytest.raises(PromptTuneError, match=f"^{path}:2: missing field 'premise'$"):
        get_task("RTE").read(path, "train")


def test_blank_lines_do_not_shift_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "val.jsonl"
    path.write_text('{"premise": "p", "hypothesis": "h", "idx": 0}\n\n{"premise": "p", "idx": 1}\n')
    with pytest.raises(PromptTuneError, match=f"{path}:3: missing field 'hypothesis'"):
        get_task("RTE").read(path, "val")


def test_label_outside_label_set(tmp_path: Path) -> None:
    path = write(tmp_path, [{"premise": "p", "hypothesis": "h", "idx": 0, "label": "maybe"}])
    with pytest.raises(
        PromptTuneError, match=f"{path}:1: field 'label' must be one of entailment, contradiction"
    ):
        get_task("CB").read(path, "train")
    path = write(tmp_path, [{"passage": "p", "question": "q", "idx": 0, "label": 1}])
    with pytest.raises(PromptTuneError, match="field 'label' must be one of False, True, got 1"):
        get_task("BoolQ").read(path, "train")


def test_wrong_types_name_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, [{"premise": "p", "hypothesis": "h", "idx": "7"}])
    with pytest.raises(PromptTuneError, match=f"{path}:1: field 'idx' must be an integer, got '7'"):
        get_task("RTE").read(path, "train")
    row = {
        "idx": 0,
        "passage": {"text": "t", "questions": [{"idx": 0, "question": "q", "answers": [{"idx": 0}]}]},
    }
    path = write(tmp_path, [row])
    with pytest.raises(PromptTuneError, match=r"missing field 'passage\.questions\[0\]\.answers\[0\]\.text'"):
        get_task("MultiRC").read(path, "train")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text("\n")
    with pytest.raises(PromptTuneError, match="file is empty"):
        get_task("WiC").read(path, "train")


def test_wrong_encoding_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    good = json.dumps({"premise": "p", "hypothesis": "h", "label": "entailment", "idx": 0})
    path.write_bytes((good + "\n" + good.replace("p", "caf\u00e9") + "\n").encode("latin-1"))
    with pytest.raises(PromptTuneError, match=rf"^{path}:2: not valid UTF-8"):
        get_task("CB").read(path, "train")


def test_unlabelled_rows_and_extra_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path, [{"premise": "p", "choice1": "A.", "choice2": "B.", "question": "effect", "idx": 3, "x": 1}]
    )
    (example,) = get_task("COPA").read(path, "test")
    assert example.guid == "test-3" and example.label is None and example.choices == ("so a.", "so b.")


def test_wsc_span_mismatch_is_a_line_error(tmp_path: Path) -> None:
    target = {"span1_index": 0, "span1_text": "The dog", "span2_index": 3, "span2_text": "it"}
    path = write(tmp_path, [{"text": "The cat saw it.", "target": target, "idx": 0, "label": True}])
    with pytest.raises(
        PromptTuneError, match=f"{path}:1: field 'target.span1_text' 'The dog' is not at word 0"
    ):
        get_task("WSC").read(path, "train")


def test_wic_offsets_outside_sentence(tmp_path: Path) -> None:
    row = {"sentence1": "Go.", "sentence2": "Went.", "start1": 0, "end1": 9, "start2": 0, "end2": 4, "idx": 0}
    path = write(tmp_path, [row])
    with pytest.raises(PromptTuneError, match=f"{path}:1: fields 'start1'/'end1'"):
        get_task("WiC").read(path, "train")


def test_record_entity_offsets_outside_passage(tmp_path: Path) -> None:
    passage = {"text": "Ann met Bob.", "entities": [{"start": 0, "end": 2}, {"start": 8, "end": 40}]}
    path = write(
        tmp_path, [{"idx": 0, "passage": passage, "qas": [{"idx": 0, "query": "@placeholder left."}]}]
    )
    with pytest.raises(PromptTuneError, match=rf"{path}:1: entity offsets 8\.\.40 fall outside"):
        get_task("ReCoRD").read(path, "train")


def test_sst2_tsv_errors(tmp_path: Path) -> None:
    sst2 = get_task("SST-2")
    path = tmp_path / "dev.tsv"
    path.write_text("sentence\tlabel\ngood film\t1\nbad\tfilm\t0\n")
    with pytest.raises(PromptTuneError, match=f"{path}:3: expected 2 tab-separated columns, got 3"):
        sst2.read(path, "val")
    path.write_text("sentence\tlabel\ngood film\t1\nbad film\tneg\n")
    with pytest.raises(PromptTuneError, match=f"{path}:3: field 'label' must be one of 0, 1, got 'neg'"):
        sst2.read(path, "val")
    path.write_text("sentence\tlabel\n")
    with pytest.raises(PromptTuneError, match="no data lines"):
        sst2.read(path, "val")
    path.write_text("index\tsentence\n0\tfine film\n")
    (example,) = sst2.read(path, "test")
    assert example.text_a == "fine film" and example.label is None
