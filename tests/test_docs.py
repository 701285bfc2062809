"""The specification lives in the repository: code cites docs/claims.md and docs/methods.md (never a file
outside the project), every cited section exists, and every claim, prompt base, objective, task and
setting has its section, so a new one without documentation fails here; and CI runs the README's test commands
as written."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from prompttune.bases import BASES
from prompttune.claims import CLAIMS
from prompttune.objectives import OBJECTIVES
from prompttune.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SPEC = ("claims", "methods")  # the specification files under docs/
# Where code and documentation live (not generated outputs): every file below these is scanned.
SCANNED = ("prompttune", "tests", "benchmarks", "pipelines", "README.md", "Snakefile", "dvc.yaml", "Makefile")
# A specification file by name (the papers' folder outside the project held CLAIMS, METHODS and
# ABSTRACTS), with whatever path precedes it; and that folder itself.
SPEC_NAME = re.compile(r"([\w./-]*?)\b(claims|methods|abstracts)\.md", re.IGNORECASE)
PAPERS_FOLDER = re.compile(r"shared[/\\]papers", re.IGNORECASE)
DOC_CITATION = re.compile(r"docs/(\w+)\.md#([\w-]+)")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
SETTINGS = ("fewglue", "superglue", "fewshot-k")  # splits.parse_setting: fewshot-<k> for every k


def scanned_files() -> Iterator[tuple[Path, str]]:
    """(path, text) of every text file of the project's code and documentation outside docs/."""
    for name in SCANNED:
        top = ROOT / name
        paths = sorted(top.rglob("*")) if top.is_dir() else [top] if top.is_file() else []
        for path in paths:
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            try:
                yield path, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue  # binary


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (hyphens kept), spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    """The anchors of a markdown file's headings (outside code blocks; repeats numbered as GitHub does)."""
    seen: dict[str, int] = {}
    found = set()
    fenced = False
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6} (.+)", line)):
            base = slug(match.group(1))
            repeat = seen.get(base, 0)
            found.add(f"{base}-{repeat}" if repeat else base)
            seen[base] = repeat + 1
    return found


def test_specification_is_cited_only_in_docs() -> None:
    """No file cites the papers' specification files (CLAIMS, METHODS, ABSTRACTS) or their folder outside
    the repository: the specification is docs/claims.md and docs/methods.md."""
    offending = []
    for path, text in scanned_files():
        for number, line in enumerate(text.splitlines(), start=1):
            wrong = [
                m.group(0)
                for m in SPEC_NAME.finditer(line)
                if not (m.group(1).endswith("docs/") and m.group(2) in SPEC)
            ]
            wrong += [m.group(0) for m in PAPERS_FOLDER.finditer(line)]
            if wrong:
                offending.append(f"{path.relative_to(ROOT)}:{number}: {', '.join(wrong)}")
    assert not offending, "cite docs/claims.md or docs/methods.md instead:\n" + "\n".join(offending)


def test_cited_sections_exist() -> None:
    """Every ``docs/<file>.md#<anchor>`` in the code, and every link between the docs, names a heading."""
    known = {doc.stem: anchors(doc) for doc in DOCS.glob("*.md")}
    missing = []
    for path, text in scanned_files():
        for number, line in enumerate(text.splitlines(), start=1):
            for doc, anchor in DOC_CITATION.findall(line):
                if anchor not in known.get(doc, set()):
                    missing.append(f"{path.relative_to(ROOT)}:{number}: docs/{doc}.md#{anchor}")
    for doc in DOCS.glob("*.md"):
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
            for target in MARKDOWN_LINK.findall(line):
                if "://" in target:
                    continue
                file, _, anchor = target.partition("#")
                stem = Path(file).stem if file else doc.stem
                if file and not (DOCS / file).is_file():
                    missing.append(f"docs/{doc.name}:{number}: {target} (no such file)")
                elif anchor and anchor not in known.get(stem, set()):
                    missing.append(f"docs/{doc.name}:{number}: {target}")
    assert not missing, "sections that do not exist:\n" + "\n".join(missing)


def test_every_claim_has_a_section() -> None:
    """Each claim of ``prompttune.claims.CLAIMS`` has a heading of its own id (``docs/claims.md#ptp-3``)."""
    sections = anchors(ROOT / "docs/claims.md")
    assert [c for c in CLAIMS if c.lower() not in sections] == [], "add a section to docs/claims.md"


@pytest.mark.parametrize(
    ("kind", "names"),
    [
        ("prompt base", BASES.names()),
        ("objective", OBJECTIVES.names()),
        ("task", TASKS.names()),
        ("setting", list(SETTINGS)),
    ],
)
def test_every_method_task_and_setting_has_an_entry(kind: str, names: list[str]) -> None:
    """Each registered base, objective and task (and each setting) has a heading of its own name."""
    sections = anchors(ROOT / "docs/methods.md")
    assert [n for n in names if n.lower() not in sections] == [], f"add each {kind} to docs/methods.md"


def test_ci_runs_the_readmes_test_commands_as_written() -> None:
    """.ci/run ends with `make test`, then the README's SLURM recipe (its "Tests" section) line for line."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Tests")
    section = readme[start : readme.index("\n## ", start)]
    recipe = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[-1].splitlines()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ci[-len(recipe) - 1 :] == ["make test", *recipe]
