"""A benchmark run writes its figures where git does not track them: the tracked
bench/results.json is the run docs/performance.md quotes: a run must not rewrite it."""

from __future__ import annotations

from pathlib import Path

from bench.run import parse_plan

ROOT = Path(__file__).resolve().parents[2]


def test_a_run_writes_to_an_ignored_file_not_the_tracked_results() -> None:
    written = parse_plan([]).json_path

    assert written != ROOT / "bench" / "results.json"
    assert written.is_relative_to(ROOT / "bench" / "results")
    assert "bench/results/" in (ROOT / ".gitignore").read_text().splitlines()
