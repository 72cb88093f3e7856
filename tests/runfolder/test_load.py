"""One declaration per load setting: the CLI, the config and Locust's parser all take runfolder/load.py's."""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from bench.run.config import ConfigError, RunConfig, load_config
from bench.run.loadrun import locust_args
from bench.run.options import run_parameters
from loadtests._arrivals import ARRIVALS
from loadtests._stages import STAGES
from runfolder import load
from runfolder.load import LOCUST_ARGUMENTS, LOCUST_STANDALONE_DEFAULTS, LoadSettings, load_section

REPO = Path(__file__).resolve().parents[2]

# Locust's real parser with our arguments, in a child process (gevent stays out of the test process).
LOCUST_DEFAULTS = """
import json, sys
from locust.argument_parser import get_parser
from loadtests._options import add_arguments
parser = get_parser(default_config_files=[])
add_arguments(parser)
ns = parser.parse_args(["-f", "loadtests"])
print(json.dumps({name: getattr(ns, name) for name in sys.argv[1:]}))
"""


def test_locust_defaults_are_the_declarations() -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(REPO)}  # no LOCUST_* / REDIS_URL from the caller
    out = subprocess.run(
        [sys.executable, "-c", LOCUST_DEFAULTS, *LOCUST_ARGUMENTS],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    locust = json.loads(out.stdout)
    declared = {name: LOCUST_STANDALONE_DEFAULTS.get(name, load.default(name)) for name in LOCUST_ARGUMENTS}
    assert locust == declared
    # the only differences are the declared standalone ones (Locust's closed model, no shape)
    assert {n for n in LOCUST_ARGUMENTS if locust[n] != load.default(n)} == set(LOCUST_STANDALONE_DEFAULTS)
    assert declared["drain_timeout_s"] == RunConfig().drain_timeout_s == 60.0  # once disagreed (60 vs 30)


def test_cli_options_have_no_default_of_their_own() -> None:
    params = run_parameters()
    assert {p.name for p in params} >= {
        "users",
        "arrival_rate",
        "duration",
        "drain_timeout",
        "expect_workers",
    }
    assert all(p.default.default is None for p in params)  # "not given": the declaration's default applies
    cfg = load_config(None, {})
    assert cfg.model_dump(include=set(LoadSettings.model_fields)) == LoadSettings().model_dump()


def test_the_locust_command_line_carries_the_settings(tmp_path: Path) -> None:
    cfg = load_config(None, {"late_threshold_ms": 7.5, "payload_mix": "small=1,large=1"})
    args = locust_args(cfg, "offload", "http://127.0.0.1:1", tmp_path, None)
    flags = dict(zip(args[::1], args[1::1], strict=False))
    assert flags["--late-threshold-ms"] == "7.5" and flags["--payload-mix"] == "small=1,large=1"
    assert flags["--drain-timeout-s"] == "60" and "--master" not in args and "--shape" not in args


def test_expect_workers_makes_locust_a_master(tmp_path: Path) -> None:
    cfg = load_config(None, {"expect_workers": 3, "master_bind_host": "0.0.0.0", "master_port": 5600})
    args = locust_args(cfg, "noop", "http://127.0.0.1:1", tmp_path, None)
    joined = " ".join(args)
    assert "--master --expect-workers 3 --expect-workers-max-wait 60" in joined
    assert "--master-bind-host 0.0.0.0 --master-bind-port 5600" in joined
    assert load_section(cfg)["expect_workers"] == 3
    with pytest.raises(ConfigError, match="with expect_workers start the workers yourself"):
        load_config(None, {"expect_workers": 2, "processes": 2})


def test_load_processes_talk_over_loopback_on_a_free_port(tmp_path: Path) -> None:
    cfg = load_config(None, {"processes": 2})
    args = locust_args(cfg, "noop", "http://127.0.0.1:1", tmp_path, None)
    flags = dict(zip(args, args[1:], strict=False))
    assert flags["--processes"] == "2" and flags["--master-bind-host"] == "127.0.0.1"
    assert flags["--master-bind-port"] == flags["--master-port"] != "5557"  # Locust's default is *:5557
    assert flags["--master-host"] == "127.0.0.1"


def test_literal_choices_match_what_loadtests_implements() -> None:
    def choices(name: str) -> set[str]:
        return set(typing.get_args(LoadSettings.model_fields[name].annotation))

    assert choices("arrival") == set(ARRIVALS)
    assert choices("shape") == set(STAGES)


def test_run_json_load_section_has_one_builder() -> None:
    section = load_section(LoadSettings(arrival_rate=0))
    assert section["model"] == "closed" and section["users"] == 50 and section["warmup_s"] == 5.0
    assert list(section) == list(load.RUN_JSON_KEYS)


def test_a_standalone_locust_run_describes_its_load_with_the_same_builder() -> None:
    from argparse import Namespace

    from loadtests._options import load_options, standalone_load_section

    parsed = Namespace(
        mode="offload", run_dir="", redis_url="", capture="on", ob_streams=0, num_users=3, spawn_rate=3.0,
        run_time=10, expect_workers=0, **{name: LOCUST_STANDALONE_DEFAULTS.get(name, load.default(name)) for name in LOCUST_ARGUMENTS},
    )  # fmt: skip
    section = standalone_load_section(load_options(parsed), parsed, processes=2)
    assert list(section) == list(load.RUN_JSON_KEYS)
    assert section["model"] == "closed" and section["users"] == 3 and section["duration_s"] == 10
    assert section["shape"] == "constant" and section["processes"] == 2 and section["warmup_s"] is None
