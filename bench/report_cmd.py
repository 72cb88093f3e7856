"""`offload-bench report RUN_DIR`: rebuild a run's report (summary.json, report.md/html, plots) offline."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from bench.errors import fail

console = Console(stderr=True)


def report_command(
    run_dir: Path = typer.Argument(..., help="A run folder, e.g. reports/latest."),
    warmup_s: float | None = typer.Option(
        None,
        "--warmup-s",
        help="Seconds excluded at the start of each mode (default: the run's load.warmup_s).",
    ),
    percentile: str | None = typer.Option(
        None, "--percentile", help="Headline verdict percentile: p50, p90, p95, p99 or p999 (default p95)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Write the report here instead of into RUN_DIR."),
    thresholds: Path | None = typer.Option(
        None, "--thresholds", help="A thresholds TOML file (default: the packaged analysis/thresholds.toml)."
    ),
) -> None:
    """Rebuild a run's report from its folder alone (no server needed)."""
    from analysis.config import PERCENTILES, ConfigError, load_thresholds  # light: usage errors answer fast

    if percentile is not None and percentile not in PERCENTILES:
        fail(f"unknown percentile {percentile!r}", f"one of {', '.join(PERCENTILES)}")
    if warmup_s is not None and warmup_s < 0:
        fail(f"--warmup-s must be >= 0, got {warmup_s:g}")
    try:
        th = load_thresholds(thresholds)
    except ConfigError as exc:
        fail(str(exc))
    from analysis.load import RunDataError  # pandas and matplotlib load only once the input looks usable
    from analysis.report import build_report

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("report", total=None)
        try:
            summary = build_report(
                run_dir, warmup_s=warmup_s, percentile=percentile, out_dir=out, thresholds=th,
                progress=lambda msg: progress.update(task, description=msg),
            )  # fmt: skip
        except RunDataError as exc:
            progress.stop()
            fail(str(exc))
        except Exception as exc:  # a bug, but people get one line, not a traceback
            progress.stop()
            fail(
                f"could not analyse {run_dir}: {type(exc).__name__}: {exc}",
                "a bug in offload-bench: please report it",
            )
    target = out or run_dir
    for mode, m in summary["modes"].items():
        lat, verdict = m["latency_ms"], m["target"]["verdict"]
        if m.get("partial"):
            console.print(f"[yellow]{mode}: partial (no samples)[/yellow]")
            continue
        console.print(
            f"{mode:8} p50 {lat['p50']:.1f} ms  p95 {lat['p95']:.1f} ms  p99 {lat['p99']:.1f} ms  "
            f"{m['target']['percentile']} {verdict}  errors {m['failures']}"
        )
    validity = summary["validity"]
    if not validity["valid"]:
        for note in validity["notes"]:
            console.print(f"[yellow]warning: {note}[/yellow]", highlight=False)
    typer.echo(str(Path(target) / "report.html"))
