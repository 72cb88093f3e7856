"""Every subcommand of the installed console script answers --help (the tool a `pip install` gives)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer.main

from bench.cli import app
from tests.scripts import console_script


def _command_paths() -> list[list[str]]:
    """Every command and sub-command of the CLI, as argv prefixes (read from the Typer app itself)."""
    group = typer.main.get_group(app)
    paths: list[list[str]] = []
    for name, command in group.commands.items():
        paths.append([name])
        for sub in getattr(command, "commands", {}):
            paths.append([name, sub])
    return paths


def test_the_cli_has_the_documented_commands() -> None:
    names = {path[0] for path in _command_paths()}
    assert {"run", "up", "report", "gate", "compare", "capacity", "baseline", "dlq"} <= names


@pytest.mark.parametrize("path", _command_paths(), ids=" ".join)
def test_every_subcommand_answers_help(path: list[str]) -> None:
    proc = subprocess.run(
        [console_script("offload-bench"), *path, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Usage:" in proc.stdout and "Traceback" not in proc.stderr


def test_the_cli_starts_without_pandas_or_matplotlib() -> None:
    """The search, the analysis and their plots import numpy, pandas and matplotlib where they run: --help,
    gate, baseline and dlq start without them (in a pipeline step, every call pays its imports)."""
    code = "import sys, bench.cli; print(sorted({'numpy', 'pandas', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout
