"""A load time that is not whole seconds (Locust's --run-time takes whole seconds) is a usage error naming the
option, for `run --duration` and `capacity --step-duration`: one `error:` line, exit 2, nothing written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.run.config import ConfigError, load_config


@pytest.mark.parametrize("value", ["2.5s", "1m0.5s", 2.5])
def test_a_fractional_duration_is_refused(value):
    with pytest.raises(ConfigError, match=r"^duration_s: must be whole seconds .* got (2\.5|60\.5)s$"):
        load_config(None, {"duration_s": value})


@pytest.mark.parametrize(("value", "seconds"), [("3s", 3), ("1m", 60), ("1m30s", 90), (7, 7), (4.0, 4)])
def test_whole_seconds_are_accepted(value, seconds):
    assert load_config(None, {"duration_s": value, "warmup_s": 0.5}).duration_s == seconds


@pytest.mark.parametrize(
    ("command", "args", "option"),
    [
        ("run", ["--duration", "2.5s"], "duration_s"),
        ("capacity", ["--step-duration", "2.5s"], "--step-duration"),
    ],
)
def test_the_cli_says_it_in_one_line_and_exits_2(command, args, option, tmp_path: Path, capsys, monkeypatch):
    from bench.cli import main  # in-process: the console script's own entry point

    monkeypatch.chdir(tmp_path)  # no offload-bench.toml of the repository's is read
    monkeypatch.setattr(sys, "argv", ["offload-bench", command, "--out", str(tmp_path / "out"), *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}: must be whole seconds"), lines
    assert not (tmp_path / "out").exists()  # nothing written
