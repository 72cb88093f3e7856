"""`offload-bench gate`: judge candidate runs against rules and a baseline; exit 0 pass, 1 regression, 2 usage."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from bench.errors import fail
from bench.judge.gate_eval import RuleConfigError, RuleResult, evaluate
from bench.judge.gate_inputs import (
    GateInputError,
    Summary,
    load_baseline,
    load_summaries,
    mismatches,
    schema_problems,
)
from bench.judge.gate_report import markdown, print_table, verdict, write_junit, write_markdown
from bench.judge.gate_rules import RelativeRule, RulesError, RulesFile, load_rules
from bench.judge.gate_stats import describe_method
from bench.judge.gate_trackers import write_trackers

DEFAULT_BASELINE = Path("reports/baseline")


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def _baseline(path: Path | None, rules: RulesFile) -> tuple[list[Summary], dict[str, Any], Path]:
    """The baseline: used when named or when a relative rule needs it. Rules that need none (ratio-only
    profiles such as gates-ci.toml) ignore the default one, so runs of another length are not refused."""
    folder = path or DEFAULT_BASELINE
    if path is None and not rules.needs_baseline:
        return [], {}, folder
    summaries, meta = load_baseline(folder)
    return summaries, meta, folder


def _check_comparable(candidates: list[Summary], baseline: list[Summary], force: bool) -> list[str]:
    """Refuse (or, forced, warn about) different schema versions and load parameters; returns warnings."""
    problems = schema_problems(candidates + baseline) + mismatches(candidates[0], candidates[1:] + baseline)
    if problems and not force:
        fail(
            "runs are not comparable: " + "; ".join(problems),
            "use the same load parameters as the baseline, or --force to compare anyway",
        )
    warnings = [f"compared despite: {p}" for p in problems]
    warnings += [
        f"run {s.run_id} is {s.run.status}, not complete: its figures may be partial"
        for s in candidates + baseline
        if s.run.status not in (None, "complete")
    ]
    machines = {_machine(s) for s in baseline} | {_machine(s) for s in candidates}
    if baseline and len(machines) > 1:
        # Not refused: CI runners differ by design; but relative and absolute figures then compare machines too.
        warnings.append(
            f"runs come from different machines ({', '.join(sorted(machines))}): only ratio rules "
            "are machine-independent"
        )
    return warnings


def _machine(summary: Summary) -> str:
    meta = summary.run.meta
    return f"{meta.host or '?'}/{meta.cpu_count or '?'} CPUs"


def _header(
    candidates: list[Summary], baseline: list[Summary], meta: dict[str, Any], folder: Path, rules_source: str
) -> list[str]:
    lines = [f"candidate: {len(candidates)} run(s): {', '.join(s.run_id for s in candidates)}"]
    if baseline:
        commit = str(meta.get("git_commit") or "?")[:12]
        lines.append(
            f"baseline: {folder} ({len(baseline)} run(s), commit {commit}, {meta.get('date', 'date ?')})"
        )
    else:
        lines.append("baseline: none (no rule needs one)")
    lines.append(f"rules: {rules_source}")
    return lines


def gate_command(
    candidates: Annotated[
        list[Path], typer.Argument(help="candidate run folders (their summary.json) or summary.json files")
    ],
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline", help="baseline folder (summary files + baseline.json) (default: reports/baseline)"
        ),
    ] = None,
    rules: Annotated[
        Path | None,
        typer.Option(
            "--rules",
            help="rules TOML file (default: the packaged bench/gates.toml; bench/gates-ci.toml: ratio rules only)",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="compare even when load parameters or schema versions differ (warns)"),
    ] = False,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="write JUnit XML here (one testcase per rule)")
    ] = None,
    markdown_file: Annotated[
        Path | None,
        typer.Option(
            "--markdown",
            help="write the Markdown report here (also appended to $GITHUB_STEP_SUMMARY when set)",
        ),
    ] = None,
    benchmark_json: Annotated[
        Path | None,
        typer.Option(
            "--benchmark-json",
            help="write github-action-benchmark customSmallerIsBetter JSON here (median of the runs per mode x figure)",
        ),
    ] = None,
    bmf: Annotated[
        Path | None,
        typer.Option("--bmf", help="write Bencher Metric Format JSON here (median, min and max of the runs)"),
    ] = None,
) -> None:
    """Judge candidate runs against the rules and the baseline: exit 0 pass, 1 regression, 2 usage error."""
    try:
        rules_file, rules_source = load_rules(rules)
        cands = load_summaries(candidates)
        base, meta, folder = _baseline(baseline, rules_file)
    except (RulesError, GateInputError) as exc:
        fail(str(exc))
    warnings = _check_comparable(cands, base, force)
    for line in warnings:
        _warn(line)
    try:
        results: list[RuleResult] = evaluate(rules_file, cands, base)
    except RuleConfigError as exc:
        fail(str(exc))
    settings = rules_file.settings
    fixed = [rule for rule in rules_file.rules.values() if not isinstance(rule, RelativeRule)]
    judges = sorted({rule.judge for rule in fixed})
    method = describe_method(settings.alpha, settings.min_effect, judges, rules_file.needs_baseline)
    header = _header(cands, base, meta, folder, rules_source)
    console = Console(width=None if sys.stdout.isatty() else 160)
    outcome = verdict(results)
    for line in header:
        console.print(line, highlight=False, markup=False)
    print_table(console, results, f"offload-bench gate: {outcome}")
    for r in results:
        if r.status == "FAIL":
            console.print(f"FAIL {r.message}", highlight=False, markup=False)
    console.print(f"method: {method}", highlight=False, markup=False)
    written = write_markdown(markdown(results, header, method, warnings), markdown_file)
    if junit is not None:
        write_junit(results, method, junit)
        written.append(junit)
    written += write_trackers(cands, benchmark_json, bmf)
    for path in written:
        console.print(f"wrote {path}", highlight=False, markup=False)
    console.print(f"gate: {outcome}", highlight=False, markup=False)
    if outcome == "FAIL":
        raise typer.Exit(1)
