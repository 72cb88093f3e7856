"""What every queue library's tracker shares (issue 21): its stock example measured end to end by
`offload-bench run --target examples/fastapi_<lib>/target.toml`, the library imported only when its tracker is
used, and without it one `error:` line with the install command, exit 2. Each library's own fates (done, dead,
lost, unknown) are tested in its test_tracker_<lib>.py against its real worker."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from targets import Jobs
from targets.trackers import make_tracker
from tests.targets.conftest import REPO, VENV_BIN


@dataclass(frozen=True)
class Library:
    name: str
    settings: (
        str | None
    )  # the example's settings variant for the end-to-end run (None: the library's defaults)
    queue_wait: bool  # the library stores a start time: queue wait is known
    e2e: bool  # it stores an end time: end-to-end is known
    queue: str = "default"

    @property
    def example(self) -> Path:
        return REPO / "examples" / f"fastapi_{self.name}"


LIBRARIES = [
    Library("rq", None, queue_wait=True, e2e=True),
    # Celery acks early by default: a task running at the end of the drain leaves no key, so the run's lost 0
    # is the at-least-once settings'; Celery stores no start time (no queue wait), only date_done
    Library("celery", "settings_at_least_once", queue_wait=False, e2e=True, queue="celery"),
    Library("saq", "settings_at_least_once", queue_wait=True, e2e=True),  # ttl = 0: lost is decidable
    # a success leaves a trace only with the Results middleware; Dramatiq stores neither a start nor an end time
    Library("dramatiq", "settings_at_least_once", queue_wait=False, e2e=False, queue="default:divide"),
]
IDS = [lib.name for lib in LIBRARIES]


def _hide(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """What check_library sees on a machine without the library."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a)
    )


def _install_line(lib: Library) -> str:
    return f"tracker \"{lib.name}\" needs: pip install 'offload-bench[{lib.name}]'"


@pytest.mark.parametrize("lib", LIBRARIES, ids=IDS)
def test_offload_bench_runs_the_example_end_to_end(lib: Library, tmp_path: Path) -> None:
    prefix = f"{lib.name.upper()}_"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OFFLOAD_", prefix)) and k != "REDIS_URL"}
    env.update(PATH=VENV_BIN + os.pathsep + env.get("PATH", ""), WORK_MS="20")
    if lib.settings:
        env[f"{prefix}SETTINGS"] = lib.settings
    short = ["--duration", "2s", "--warmup", "1s", "--arrival-rate", "10", "--drain-timeout", "20s"]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--out", str(tmp_path / "runs"),
         "--target", str(lib.example / "target.toml"), *short],
        cwd=tmp_path, env=env, capture_output=True, timeout=90, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["modes"]) == {"sync", "offload"}
    jobs = summary["modes"]["offload"]["jobs"]
    assert jobs["accepted"] > 0 and jobs["completed"] == jobs["accepted"] and jobs["lost"] == 0, jobs
    # a figure the library cannot give is unknown, never a made-up 0
    assert (jobs["e2e_samples"] > 0) is lib.e2e
    assert (jobs["queue_wait_ms"]["p50"] is not None) is lib.queue_wait
    run = json.loads((run_dir / "run.json").read_text())
    assert run["target"]["tracker"] == lib.name and run["modes"]["offload"]["tracker"]["name"] == lib.name


def test_no_library_is_imported_until_its_tracker_is_used() -> None:
    code = f"import sys, targets.trackers; print([m for m in {IDS!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=30, capture_output=True)
    assert out.stdout.decode().strip() == "[]"


@pytest.mark.parametrize("lib", LIBRARIES, ids=IDS)
def test_a_missing_library_is_one_line_with_the_install_command(
    lib: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hide(monkeypatch, lib.name)
    with pytest.raises(ImportError) as err:
        make_tracker(Jobs(tracker=lib.name, queue=lib.queue), "redis://127.0.0.1:1/0", "")  # type: ignore[arg-type]
    assert str(err.value) == _install_line(lib)


@pytest.mark.parametrize("lib", LIBRARIES, ids=IDS)
def test_a_run_without_the_library_is_one_error_line_and_exit_2(
    lib: Library, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.cli import main  # in-process: the console script's own entry point

    _hide(monkeypatch, lib.name)
    argv = ["offload-bench", "run", "--target", str(lib.example / "target.toml"), "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {_install_line(lib)}"]
    assert not list(tmp_path.iterdir())  # nothing started, nothing written
