"""`offload-bench compare RUN_A RUN_B`: the side-by-side report of two runs (Markdown + HTML), without verdicts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.errors import fail
from bench.judge.compare_report import html, markdown, sections
from bench.judge.gate_inputs import GateInputError, Summary, load_summary
from runfolder.rundir import safe_name


def _target(summary: Summary, mode: str) -> dict[str, float]:
    """The latency target lines (fast_ms, slow_ms) the run's report used, when its summary has them."""
    mode_summary = summary.model.modes.get(mode)
    target = mode_summary.target if mode_summary is not None else None
    return {
        "fast_ms": target.fast_ms if target is not None and target.fast_ms is not None else 100.0,
        "slow_ms": target.slow_ms if target is not None and target.slow_ms is not None else 1000.0,
    }


def compare_command(
    run_a: Annotated[Path, typer.Argument(help="run A (folder or summary.json), e.g. before / 2 workers")],
    run_b: Annotated[Path, typer.Argument(help="run B (folder or summary.json), e.g. after / 4 workers")],
    out: Annotated[
        Path | None, typer.Option("--out", help="report folder (default: reports/compare/<A>_vs_<B>)")
    ] = None,
) -> None:
    """Render two runs side by side (tables and overlaid percentile curves) without judging them."""
    # pandas and matplotlib load only for this command, not for every CLI start.
    from bench.judge.compare_plots import curves, plot_overlay

    try:
        a, b = load_summary(run_a), load_summary(run_b)
    except GateInputError as exc:
        fail(str(exc))
    # run ids and mode names come from the files compared: made safe before they name a path (issue 14.10)
    folder = out or Path("reports/compare") / safe_name(f"{a.run_id}_vs_{b.run_id}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create {folder}: {exc.strerror or exc}", "choose another --out")
    console = Console(width=None if sys.stdout.isatty() else 120)
    tables = sections(a, b)
    plots: dict[str, Path] = {}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("reading samples", total=2)
        curves_a = curves(a, f"A {a.run_id}")
        progress.advance(task)
        curves_b = curves(b, f"B {b.run_id}")
        progress.advance(task)
        modes = list(dict.fromkeys([*curves_a, *curves_b]))
        plot_task = progress.add_task("plotting", total=len(modes))
        for mode in modes:
            target = {**_target(b, mode), **_target(a, mode)}
            path = plot_overlay(
                mode,
                curves_a.get(mode),
                curves_b.get(mode),
                folder / "plots" / f"{safe_name(mode)}.png",
                **target,
            )
            plots[mode] = path
            progress.advance(plot_task)
    title = f"offload-bench compare: {a.run_id} vs {b.run_id}"
    relative = {mode: path.relative_to(folder) for mode, path in plots.items()}
    (folder / "compare.md").write_text(
        markdown(title, str(a.path), str(b.path), tables, relative), encoding="utf-8"
    )
    (folder / "compare.html").write_text(
        html(title, str(a.path), str(b.path), tables, plots), encoding="utf-8"
    )
    for section in tables:
        table = Table(title=section.title, title_justify="left")
        for column in ("figure", f"A {a.run_id}", f"B {b.run_id}", "change"):
            table.add_column(column)
        for row in section.rows:
            style = "bold red" if row.change == "DIFFERENT" else ""
            table.add_row(row.label, row.a, row.b, row.change, style=style)
        console.print(table)
    console.print(
        f"wrote {folder / 'compare.md'} and {folder / 'compare.html'}", highlight=False, markup=False
    )
