"""The repository keeps its promises: CI runs the README's test command; results stay untracked."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "pip install -e '.[test]' && ruff format --check . && ruff check . && mypy && python -m pytest"
    assert command in readme
    assert command in ci


def test_results_folder_is_ignored():
    ignore = (ROOT / ".gitignore").read_text().splitlines()
    assert "results/*" in ignore and "!results/.gitkeep" in ignore


def test_metric_catalogue_is_the_one_home():
    """Every metric of the catalogue has its row in METRICS.md, is a column where it is per-request,
    parses as an SLO, and (where the gate can compare it) as a tolerance with the catalogue's direction."""
    from bench.analysis.results import schema
    from bench.decisions.compare import parse_tolerance
    from bench.metrics import CATALOGUE, GATED, REQUEST_METRICS
    from bench.records import COLUMNS
    from bench.slo import parse_slo

    doc = (Path(__file__).resolve().parent.parent / "docs" / "METRICS.md").read_text()
    names = schema().names
    for m in CATALOGUE:
        assert f"`{m.name}`" in doc, f"{m.name} has no row in docs/METRICS.md"
        op = "<=" if m.better == "lower" else ">="
        assert parse_slo(f"{m.name}{op}1").metric == m.name
        if m.scope == "request":
            assert m.name in COLUMNS and m.name in names and m.name in REQUEST_METRICS
    for name in GATED:
        unit = "pp" if name == "error_rate" else "%"
        sign = "+" if next(m for m in CATALOGUE if m.name == name).better == "lower" else "-"
        assert parse_tolerance(f"{name}:{sign}5{unit}").metric == name


def test_no_module_imports_a_private_name_of_another():
    import re

    root = Path(__file__).resolve().parent.parent
    bad = []
    for path in [*root.glob("bench/**/*.py"), *root.glob("benchmarks/*.py")]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = re.match(r"\s*from (bench[\w.]*) import (.+)", line)
            if m and any(name.strip().startswith("_") for name in m[2].strip("() ").split(",") if name.strip()):
                bad.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert not bad, bad


def test_stages_import_one_way():
    """Data flows load -> analysis -> decisions: no stage imports a later one (decisions read runs
    through analysis; the report draws the model ranking from analysis/pairing.py, not decisions/;
    a plain Locust run's folder is finalized by a hook the root locustfile.py sets). bench/schema.py,
    the contracts every stage shares, imports none of them."""
    import re

    root = Path(__file__).resolve().parent.parent
    stages = ("bench.load", "bench.workload", "bench.analysis", "bench.decisions", "bench.target", "bench.records")
    later = {
        "load": ("bench.decisions", "bench.analysis"),
        "workload": ("bench.decisions", "bench.analysis"),
        "analysis": ("bench.decisions",),
        "schema.py": stages + ("bench.runner", "bench.cli", "bench.options"),  # the contracts import no stage
    }
    bad = []
    for stage, banned in later.items():
        for path in [root / "bench" / stage] if stage.endswith(".py") else (root / "bench" / stage).glob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                m = re.match(r"\s*(?:from|import) (bench[\w.]*)", line)
                if m and m[1].startswith(banned):
                    bad.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert not bad, bad
