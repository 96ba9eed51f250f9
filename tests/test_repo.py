"""The repository keeps its promises: CI runs the README's test command; results stay untracked."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "pip install -e '.[test]' && python -m pytest"
    assert command in readme
    assert command in ci


def test_results_folder_is_ignored():
    ignore = (ROOT / ".gitignore").read_text().splitlines()
    assert "results/*" in ignore and "!results/.gitkeep" in ignore
