"""The README a newcomer follows: its first command is the one CI proves on a clean
machine, the quickstart comes before the references, the deploy steps are numbered in
the order they are done, and every link between the documents leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def code_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL)]


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def headings(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return [line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")]


def test_the_first_two_commands_are_the_tests_and_the_console_and_ci_runs_the_first() -> None:
    readme = (ROOT / "README.md").read_text()
    tests, console = code_blocks(readme)[:2]

    assert tests == "python3 uvw.py run --locked pytest"
    assert console == "python3 uvw.py run --locked agent.py console --text"
    assert readme.index(tests) < readme.index("## Quickstart")
    ci = (ROOT / ".ci" / "run").read_text()
    assert '"$system_python" uvw.py run --locked pytest' in ci  # from a clean HOME
    assert "\n    python3 uvw.py run --locked pytest\n" in ci


def test_the_quickstart_comes_before_the_references() -> None:
    order = headings(ROOT / "README.md")
    assert order.index("Quickstart: from a clone to a first phone call") < order.index("Commands")
    assert order.index("Tests") < order.index("More")
    # the headline figures after the tests; the tables and trade-offs in docs/performance.md
    assert order.index("Tests") < order.index("Performance") < order.index("More")
    assert len((ROOT / "README.md").read_text().splitlines()) < 300


def test_the_deploy_steps_are_numbered_in_the_order_they_are_done() -> None:
    steps = [
        int(m.group(1))
        for h in headings(ROOT / "docs" / "deploy.md")
        if (m := re.match(r"(\d+)\. ", h))
    ]
    assert steps == list(range(1, len(steps) + 1))
    titles = headings(ROOT / "docs" / "deploy.md")
    # the preflight comes before the first deploy, which it checks
    assert titles.index("8. Preflight: `agent.py check`") < titles.index(
        "10. Create the agent (first deploy)"
    )


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_link_between_the_documents_leads_somewhere(document: Path) -> None:
    for target in LINK.findall(document.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, fragment = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        assert linked.exists(), f"{document.name}: {target} does not exist"
        if fragment and linked.suffix == ".md":
            anchors = [anchor(h) for h in headings(linked)]
            assert fragment in anchors, f"{document.name}: no #{fragment} in {linked.name}"
