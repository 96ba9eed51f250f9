"""JUnit XML of the verdicts, so any CI system shows them natively: one test case per model and
metric (``bench compare``) or per model and SLO (``bench run --junit``), failures carrying the numbers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from bench.analysis.page import num

SKIP = "\x00skip:"  # a failure message starting with this marks the case skipped (undecided), not failed


def _suite(name: str, cases: list[tuple[str, str, str | None, str]]) -> ET.Element:
    """cases: (classname, name, failure message or None, details); a message starting with SKIP
    makes the case skipped with that reason (an undecided verdict is neither passed nor failed)."""
    suites = ET.Element("testsuites")
    skipped = sum(1 for c in cases if c[2] is not None and c[2].startswith(SKIP))
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=name,
        tests=str(len(cases)),
        failures=str(sum(1 for c in cases if c[2] is not None) - skipped),
        skipped=str(skipped),
    )
    for classname, case, failure, details in cases:
        tc = ET.SubElement(suite, "testcase", classname=classname, name=case)
        if failure is not None and failure.startswith(SKIP):
            ET.SubElement(tc, "skipped", message=failure[len(SKIP) :]).text = details
        elif failure is not None:
            f = ET.SubElement(tc, "failure", message=failure, type="regression" if "regression" in failure else "slo")
            f.text = details
        else:
            ET.SubElement(tc, "system-out").text = details
    return suites


def _write(root: ET.Element, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def _num(v) -> str:
    return num(v, 3)


def compare_junit(result: dict, path: Path) -> Path:
    cases = []
    for r in result["rows"]:
        details = (
            f"baseline {_num(r['baseline'])}, candidate {_num(r['candidate'])}, difference {_num(r['diff'])} "
            f"[95% CI {_num(r['ci_low'])}, {_num(r['ci_high'])}], tolerance {r['tolerance']}, verdict {r['verdict']}, "
            f"n {r['n_base']} / {r['n_cand']}; {r.get('reason', '')}"
        )
        failure = None
        if r["verdict"] == "regression":
            failure = f"{r['metric']} {r['stat']}: regression beyond {r['tolerance']}"
        elif r["verdict"] == "undecided":
            failure = f"{SKIP}undecided: {r.get('reason', '')}"
        cases.append((r["model"], f"{r['metric']} {r['stat']}", failure, details))
    for sk in result.get("skipped", []):
        cases.append((sk["model"], "enough samples to compare", f"{SKIP}not compared: {sk['reason']}", sk["reason"]))
    return _write(_suite("bench compare", cases), path)


def slo_junit(summary: dict, path: Path) -> Path:
    cases = []
    for model, s in summary["models"].items():
        for v in s["slo_verdicts"]:
            details = f"observed {v.get('observed_text') or _num(v['observed'])} over {v.get('n')} requests; {v['status']}" + (
                f" ({v['note']})" if v.get("note") else ""
            )
            cases.append((model, v["slo"], None if v["ok"] else f"{v['slo']}: {v['status']}", details))
    return _write(_suite(f"bench run {summary['run_id']} SLOs", cases), path)
