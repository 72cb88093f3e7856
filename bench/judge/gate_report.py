"""Rendering gate results: a rich table for the terminal, Markdown for CI summaries, JUnit XML for CI systems."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bench.judge.gate_eval import RuleResult

_STYLE = {"PASS": "green", "FAIL": "bold red", "SKIP": "yellow"}


def verdict(results: list[RuleResult]) -> str:
    """PASS when no rule failed, else FAIL."""
    return "FAIL" if any(r.status == "FAIL" for r in results) else "PASS"


def print_table(console: Console, results: list[RuleResult], title: str) -> None:
    """The terminal table: rule, metric, baseline, candidate, limit, noise/p-value, verdict."""
    table = Table(title=title, show_lines=False)
    for column in ("rule", "metric", "baseline", "candidate", "limit", "noise / p-value", "verdict"):
        table.add_column(column, overflow="fold")
    for r in results:
        # Text cells: names and labels come from the rules file and must not be read as rich markup.
        cells = [Text(c) for c in (r.name, r.metric, r.baseline, r.candidate, r.limit, r.noise)]
        table.add_row(*cells, Text(r.status, style=_STYLE[r.status]))
    console.print(table)


def markdown(results: list[RuleResult], header: list[str], method: str, warnings: list[str]) -> str:
    """The gate report as Markdown (GitHub-flavoured table)."""
    lines = [f"## offload-bench gate: {verdict(results)}", ""]
    lines += [f"- {item}" for item in header]
    lines += [f"- warning: {w}" for w in warnings]
    lines += ["", "| rule | metric | baseline | candidate | limit | noise / p-value | verdict |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for r in results:
        cells = [r.name, f"`{r.metric}`", r.baseline, r.candidate, r.limit, r.noise, f"**{r.status}**"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    failures = [r for r in results if r.status == "FAIL"]
    if failures:
        lines += ["", "### Failures", ""] + [f"- {r.message}" for r in failures]
    lines += ["", f"Method: {method}.", ""]
    return "\n".join(lines)


def write_markdown(text: str, path: Path | None) -> list[Path]:
    """Write the Markdown to path and append it to $GITHUB_STEP_SUMMARY when set; the files written."""
    written: list[Path] = []
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
        written.append(Path(step_summary))
    return written


def junit_xml(results: list[RuleResult], method: str) -> bytes:
    """JUnit XML: one testcase per rule; a failed rule's failure message names the rule and the figure."""
    failures = sum(r.status == "FAIL" for r in results)
    skipped = sum(r.status == "SKIP" for r in results)
    suite = ET.Element(
        "testsuite",
        name="offload-bench gate",
        tests=str(len(results)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    ET.SubElement(ET.SubElement(suite, "properties"), "property", name="method", value=method)
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"gate.{r.kind}", name=r.name)
        details = (
            f"metric: {r.metric}\nbaseline: {r.baseline}\ncandidate: {r.candidate}\nlimit: {r.limit}\n"
            f"noise: {r.noise}\nper run: {', '.join(f'{v:g}' for v in r.per_run)}"
        )
        if r.status == "FAIL":
            ET.SubElement(case, "failure", message=r.message, type="regression").text = details
        elif r.status == "SKIP":
            ET.SubElement(case, "skipped", message=r.message)
        ET.SubElement(case, "system-out").text = details
    suites = ET.Element("testsuites", tests=str(len(results)), failures=str(failures))
    suites.append(suite)
    ET.indent(suites)
    data: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return data


def write_junit(results: list[RuleResult], method: str, path: Path) -> None:
    """Write the JUnit XML file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(junit_xml(results, method))
