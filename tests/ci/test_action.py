"""The GitHub Action (action.yml) and the example workflow (.github/workflows/perf.yml), run as Actions would.

The slow test runs every step of both jobs of perf.yml in order: `run:` steps as bash with the env Actions
gives, the `uses: ./` step as the action's own steps (inputs, github.action_path, step outputs), and the three
marketplace actions simulated: checkout = a copy of the checkout's files, setup-python = a fresh venv first on
PATH, upload-artifact = the paths it names must exist. Every `${{ }}` is substituted from a small mapping, and
an expression the mapping does not know fails the test, as does a step of a kind it does not run: what a user
copies cannot hold a step this test skips. The profile is shortened (4 s per mode, 1-2 repeats) and the rules
are the test's own (every kind, margins a shared machine holds): tiny runs are too short for bench/gates.toml's
sample-count validity rule.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.bench.judge.test_gate_cli import run_cli, write_runs

REPO = Path(__file__).resolve().parents[2]
ACTION = REPO / "action.yml"
WORKFLOW = REPO / ".github" / "workflows" / "perf.yml"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
# GitHub's shells: `shell: bash` explicitly, and a workflow `run:` step without one (Linux runners).
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
DEFAULT_BASH = ["bash", "-e"]
STEP_TIMEOUT_S = 240

# The short profile both jobs run with (the gate's own, bench/perf.toml, is 30 s x 3 repeats).
CONFIG = """[run]
modes = ["noop", "offload"]
arrival_rate = 20
arrival = "poisson"
duration_s = "4s"
warmup_s = "1s"
workers = 1
"""
# One rule of each kind, with margins a shared 2-core machine holds; the relative one needs the baseline.
RULES = """
[rules.offload_lost_jobs]
kind = "absolute"
metric = "modes.offload.jobs.lost"
op = "=="
value = 0
judge = "worst"

[rules.offload_p95_rel]
kind = "relative"
metric = "modes.offload.latency_ms.p95"
max_increase_pct = 1000
unit = "ms"

[rules.offload_vs_noop_p95]
kind = "ratio"
numerator = "modes.offload.latency_ms.p95"
denominator = "modes.noop.latency_ms.p95"
op = "<="
value = 15
"""
# What the test overrides: the workflow's env per job (repeats: 1 for the baseline, 2 for the gate, to stay
# near 2 minutes) and the action's inputs where perf.yml's would take too long for a test.
WORKFLOW_ENV = {"PERF_CONFIG": "ci-test-perf.toml"}
JOB_ENV = {"baseline": {"PERF_REPEATS": "1"}, "gate": {"PERF_REPEATS": "2"}}
ACTION_INPUTS = {"rules": "ci-test-rules.toml"}
# The order Actions runs them in for this test: the baseline's artifact is committed, then the gate judges.
JOBS = ("baseline", "gate")
WORKFLOW_STEP_KEYS = {"name", "id", "uses", "with", "run", "env", "if"}
ACTION_STEP_KEYS = {"name", "id", "shell", "env", "run"}


def load_yaml(path: Path) -> dict[str, Any]:
    """A YAML file as a dict (PyYAML reads the key `on` as True; nothing here needs it)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def substitute(text: str, context: dict[str, str]) -> str:
    """Replace every ${{ expr }}; an expression the context does not know fails the test."""

    def one(match: re.Match[str]) -> str:
        expr = match.group(1)
        assert expr in context, f"unknown expression ${{{{ {expr} }}}} in {text!r}: this test cannot run it"
        return context[expr]

    return EXPRESSION.sub(one, text)


def read_outputs(path: Path) -> dict[str, str]:
    """A step's $GITHUB_OUTPUT file (name=value lines)."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        assert "=" in line and "<<" not in line.split("=", 1)[0], f"unsupported output line {line!r}"
        key, value = line.split("=", 1)
        out[key] = value
    return out


def action_name(uses: str) -> str:
    """actions/checkout@v4 -> actions/checkout."""
    return uses.split("@", 1)[0]


def check_action(action: dict[str, Any]) -> None:
    """Composite; every step plain bash; inputs reach the shell only through env; outputs name step outputs."""
    assert action["runs"]["using"] == "composite"
    inputs = set(action["inputs"])
    ids = set()
    for step in action["runs"]["steps"]:
        assert set(step) <= ACTION_STEP_KEYS, step
        assert step["shell"] == "bash" and "run" in step, step
        assert "${{" not in step["run"], f"an expression inside a script (pass it through env): {step['run']}"
        for value in step.get("env", {}).values():
            for expr in EXPRESSION.findall(value):
                ns, _, rest = expr.partition(".")
                assert ns in ("inputs", "github", "steps"), expr
                if ns == "inputs":
                    assert rest in inputs, f"undeclared input {rest}"
        ids.add(step.get("id"))
    for name, output in action["outputs"].items():
        match = EXPRESSION.fullmatch(output["value"])
        assert match, name
        ns, step_id, kind, _ = match.group(1).split(".", 3)
        assert (ns, kind) == ("steps", "outputs") and step_id in ids, name


def test_action_takes_inputs_only_through_env_and_declares_its_outputs() -> None:
    action = load_yaml(ACTION)
    check_action(action)
    assert {"target", "config", "modes", "repeats", "baseline", "rules", "output"} <= set(action["inputs"])
    assert {"run-dir", "gate-dir", "junit", "markdown", "benchmark-json", "bmf"} <= set(action["outputs"])


def check_usage(steps: list[dict[str, Any]], action: dict[str, Any]) -> None:
    """A usage snippet: its inputs are the action's, and the outputs it reads are declared by it."""
    (ours,) = [s for s in steps if s.get("uses", "").startswith("<owner>/offload-bench@")]
    assert set(ours["with"]) <= set(action["inputs"]), ours
    for step in steps:
        for value in step.get("with", {}).values():
            for expr in EXPRESSION.findall(str(value)):
                ns, step_id, kind, name = expr.split(".", 3)
                assert (ns, step_id, kind) == ("steps", ours["id"], "outputs"), expr
                assert name in action["outputs"], expr


def test_the_usage_snippets_of_the_readme_and_the_action_header_match_the_action() -> None:
    action = load_yaml(ACTION)
    header = [line[4:] for line in ACTION.read_text().splitlines() if line.startswith("#   ")]
    check_usage(yaml.safe_load("\n".join(header)), action)
    blocks = re.findall(r"```yaml\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    (readme,) = [b for b in blocks if "offload-bench@" in b]
    check_usage(yaml.safe_load(readme), action)


def test_perf_workflow_gates_through_the_action_and_installs_with_pip_install_dot() -> None:
    workflow = load_yaml(WORKFLOW)
    action = load_yaml(ACTION)
    gate = workflow["jobs"]["gate"]["steps"]
    assert [action_name(s.get("uses", "run")) for s in gate] == [
        "actions/checkout",
        "actions/setup-python",
        "./",
        "actions/upload-artifact",
    ]
    assert set(gate[2]["with"]) <= set(action["inputs"]) and set(ACTION_INPUTS) <= set(action["inputs"])
    assert "pip install ." in [s.get("run") for s in workflow["jobs"]["baseline"]["steps"]]
    assert set(WORKFLOW_ENV) <= set(workflow["env"]) and all(
        set(e) <= set(workflow["env"]) for e in JOB_ENV.values()
    )


@dataclass
class Runner:
    """Runs workflow and action steps as Actions would, on one machine; remembers what it ran."""

    tmp: Path
    venv: Path
    log: list[str] = field(default_factory=list)
    summaries: dict[str, str] = field(default_factory=dict)  # step name -> its $GITHUB_STEP_SUMMARY
    timings: list[tuple[str, float]] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)  # the action's inputs the test overrides
    # action step name -> what the test does instead (given the step's env), e.g. synthetic runs for Benchmark
    stand_ins: dict[str, Callable[[dict[str, str]], None]] = field(default_factory=dict)
    exits: dict[str, int] = field(default_factory=dict)  # action step name -> its expected exit code (else 0)

    def base_env(self) -> dict[str, str]:
        """The test's environment without its venv or any GitHub variable; the fresh venv first on PATH."""
        own_bin = str(Path(sys.executable).parent)
        path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != own_bin]
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "PYTEST_", "VIRTUAL_ENV", "PYTHON", "OFFLOAD_BENCH_"))
        }
        env["PATH"] = os.pathsep.join([str(self.venv / "bin"), *path])
        return env

    def bash(
        self, name: str, script: str, env: dict[str, str], cwd: Path, shell: list[str], expect: int = 0
    ) -> dict[str, str]:
        """One `run:` step; fails the test unless it exits with expect; its outputs."""
        n = len(self.timings)
        files = {k: self.tmp / f"step-{n}-{k}" for k in ("script", "output", "summary", "log")}
        files["script"].write_text(script, encoding="utf-8")
        files["output"].touch()
        files["summary"].touch()
        step_env = {
            **env,
            "GITHUB_OUTPUT": str(files["output"]),
            "GITHUB_STEP_SUMMARY": str(files["summary"]),
        }
        start = time.monotonic()
        with files["log"].open("wb") as log:
            proc = subprocess.run(
                [*shell, str(files["script"])], cwd=cwd, env=step_env, stdout=log, stderr=subprocess.STDOUT,
                timeout=STEP_TIMEOUT_S, check=False,
            )  # fmt: skip
        self.timings.append((name, time.monotonic() - start))
        text = files["log"].read_text(errors="replace")
        assert proc.returncode == expect, (
            f"step {name!r} exited {proc.returncode}:\n{script}\n---\n{text[-4000:]}"
        )
        self.log.append(name)
        self.summaries[name] = files["summary"].read_text()
        return read_outputs(files["output"])

    def action(
        self, step: dict[str, Any], context: dict[str, str], env: dict[str, str], ws: Path, action_path: Path
    ) -> dict[str, str]:
        """A `uses:` step of the action at action_path, run in the workspace ws: its steps in order, until
        one exits non-zero (as expected by self.exits); the action's outputs."""
        action = load_yaml(action_path / "action.yml")
        check_action(action)
        given = {k: substitute(str(v), context) for k, v in step.get("with", {}).items()} | self.inputs
        unknown = set(given) - set(action["inputs"])
        assert not unknown, f"inputs the action does not declare: {unknown}"
        inputs = {k: str(spec.get("default", "")) for k, spec in action["inputs"].items()} | given
        inner = {f"inputs.{k}": v for k, v in inputs.items()} | {"github.action_path": str(action_path)}
        action_env = {**env, "GITHUB_ACTION_PATH": str(action_path)}
        for inner_step in action["runs"]["steps"]:
            name = f"{step.get('name', './')} / {inner_step['name']}"
            step_env = {k: substitute(v, inner) for k, v in inner_step.get("env", {}).items()}
            if inner_step["name"] in self.stand_ins:
                self.stand_ins[inner_step["name"]](step_env)
                continue
            expect = self.exits.get(inner_step["name"], 0)
            outputs = self.bash(name, inner_step["run"], {**action_env, **step_env}, ws, BASH, expect)
            if "id" in inner_step:
                inner |= {f"steps.{inner_step['id']}.outputs.{k}": v for k, v in outputs.items()}
            if expect:
                break
        # a step output never written (its step failed or did not run) reads as '', as on GitHub
        unset = {m: "" for spec in action["outputs"].values() for m in EXPRESSION.findall(spec["value"])}
        return {k: substitute(spec["value"], unset | inner) for k, spec in action["outputs"].items()}


def run_job(
    runner: Runner, workflow: dict[str, Any], job: str, ws: Path, checkout: Callable[[Path], None]
) -> dict[str, list[Path]]:
    """Every step of one job of perf.yml, in order; the artifacts uploaded (name -> paths)."""
    env = runner.base_env() | {"GITHUB_WORKSPACE": str(ws)}
    env |= {k: str(v) for k, v in workflow.get("env", {}).items()} | WORKFLOW_ENV
    env |= {k: str(v) for k, v in workflow["jobs"][job].get("env", {}).items()} | JOB_ENV[job]
    context = {f"env.{k}": v for k, v in env.items()}
    artifacts: dict[str, list[Path]] = {}
    for step in workflow["jobs"][job]["steps"]:
        assert set(step) <= WORKFLOW_STEP_KEYS, step
        assert step.get("if", "always()") == "always()", step  # a condition this test would have to evaluate
        step_env = {k: substitute(str(v), context) for k, v in step.get("env", {}).items()}
        uses = action_name(step.get("uses", ""))
        with_ = {k: substitute(str(v), context) for k, v in step.get("with", {}).items()}
        if "run" in step:
            runner.bash(
                f"{job} / {step.get('name', step['run'])}", step["run"], env | step_env, ws, DEFAULT_BASH
            )
        elif uses == "actions/checkout":
            checkout(ws)
            runner.log.append(f"{job} / checkout")
        elif uses == "actions/setup-python":
            assert with_["python-version"] == f"{sys.version_info.major}.{sys.version_info.minor}", with_
            assert list(ws.glob(with_.get("cache-dependency-path", "requirements/*.txt"))), with_
            runner.log.append(f"{job} / setup-python (the fresh venv)")
        elif uses == "./":
            outputs = runner.action(step, context, env | step_env, ws, ws)
            context |= {f"steps.{step['id']}.outputs.{k}": v for k, v in outputs.items()}
        elif uses == "actions/upload-artifact":
            paths = [ws / p.strip() for p in with_["path"].splitlines() if p.strip()]
            missing = [p for p in paths if not p.exists() or (p.is_dir() and not any(p.iterdir()))]
            assert not missing, f"artifact {with_['name']}: nothing at {missing}"
            artifacts[with_["name"]] = paths
            runner.log.append(f"{job} / upload {with_['name']}")
        else:
            pytest.fail(f"step {step} of job {job}: this test does not know how to run it")
    return artifacts


def copy_checkout(ws: Path) -> None:
    """actions/checkout: the checkout's files (tracked, and new ones not ignored) copied into ws."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True, timeout=60,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a file deleted in the working tree is listed but gone
            (ws / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, ws / name)
    (ws / "ci-test-perf.toml").write_text(CONFIG)
    (ws / "ci-test-rules.toml").write_text(RULES)


@pytest.mark.timeout(400)
def test_perf_workflow_and_action_run_end_to_end_in_a_fresh_venv(tmp_path: Path) -> None:
    """Slow (~2 min): both jobs of perf.yml, the action's steps included, in a fresh venv; the gate passes."""
    started = time.monotonic()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    runner = Runner(tmp_path, venv, inputs=ACTION_INPUTS)
    workflow = load_yaml(WORKFLOW)

    # the baseline job, then its artifact committed under reports/baseline/ of the gate's checkout
    base_ws, gate_ws = tmp_path / "ws-baseline", tmp_path / "ws-gate"
    artifacts = run_job(runner, workflow, "baseline", base_ws, copy_checkout)
    (baseline,) = artifacts["perf-baseline"]
    assert shutil.which("offload-bench", path=runner.base_env()["PATH"]) == str(
        venv / "bin" / "offload-bench"
    )

    def checkout_with_new_baseline(ws: Path) -> None:
        copy_checkout(ws)
        shutil.rmtree(ws / "reports" / "baseline")
        shutil.copytree(baseline, ws / "reports" / "baseline")

    artifacts = run_job(runner, workflow, "gate", gate_ws, checkout_with_new_baseline)

    # every step ran or was simulated, none skipped
    action_steps = load_yaml(ACTION)["runs"]["steps"]
    steps = sum(len(workflow["jobs"][j]["steps"]) for j in JOBS) - 1 + len(action_steps)
    assert len(runner.log) == steps, runner.log

    # the uploaded folders are the action's outputs; every promised file is there
    run_dir, gate_dir = artifacts["perf-report"]
    assert (
        run_dir == gate_ws / "reports/offload-bench/runs"
        and gate_dir == gate_ws / "reports/offload-bench/gate"
    )
    assert len([p for p in run_dir.iterdir() if (p / "summary.json").is_file()]) == 2
    assert sorted(p.name for p in gate_dir.iterdir()) == [
        "benchmark.json",
        "bmf.json",
        "gate.md",
        "junit.xml",
    ]
    suite = ET.parse(gate_dir / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "3" and suite.get("failures") == "0"
    entries = json.loads((gate_dir / "benchmark.json").read_text())
    assert {"offload latency p95", "noop latency p95"} <= {e["name"] for e in entries}
    assert "latency-p95-ms" in json.loads((gate_dir / "bmf.json").read_text())["offload"]

    # the gate's step summary holds the Markdown once (the action does not append it again), against the baseline
    markdown = (gate_dir / "gate.md").read_text()
    gate_summary = runner.summaries[next(n for n in runner.summaries if n.endswith("/ Gate"))]
    assert gate_summary == markdown + "\n" and "## offload-bench gate: PASS" in markdown
    assert "- baseline: reports/baseline (1 run(s)" in markdown
    assert all(text == "" for name, text in runner.summaries.items() if not name.endswith("/ Gate"))

    timings = ", ".join(f"{name}: {seconds:.0f} s" for name, seconds in runner.timings)
    sys.stderr.write(f"\nstep timings: {timings}; total {time.monotonic() - started:.0f} s\n")


@pytest.mark.parametrize(
    ("shift_ms", "baseline", "code"),
    [(0.0, "reports/baseline", 0), (50.0, "reports/baseline", 1), (0.0, "no/such/baseline", 2)],
    ids=["pass", "regression", "usage"],
)
def test_the_gate_step_exits_with_the_gates_code_after_writing_summary_files_and_outputs(
    tmp_path: Path, shift_ms: float, baseline: str, code: int
) -> None:
    """The action from another repository's workspace (action path = this checkout), on synthetic runs: the
    install and the load are stood in for (the slow test runs them), the Folders and Gate steps run as bash."""
    ws = tmp_path / "user-repo"
    base = write_runs(tmp_path / "base-runs", "b", [1, 2, 3])
    proc = run_cli("baseline", "update", *base, "--baseline-dir", ws / "reports" / "baseline", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr

    def synthetic_runs(env: dict[str, str]) -> None:
        write_runs(ws / env["RUN_DIR"], "c", [11, 12, 13], shift_ms={"offload": shift_ms})

    runner = Runner(
        tmp_path,
        Path(sys.executable).parent.parent,  # the test's own venv: offload-bench is installed there
        stand_ins={"Install offload-bench": lambda env: None, "Benchmark": synthetic_runs},
        exits={"Gate": code},
    )
    step = {
        "name": "perf",
        "id": "perf",
        "uses": "<owner>/offload-bench@<ref>",
        "with": {"baseline": baseline},
    }
    outputs = runner.action(step, {}, runner.base_env(), ws, REPO)

    assert runner.log == ["perf / Folders", "perf / Gate"]
    gate_dir = ws / "reports" / "offload-bench" / "gate"
    assert outputs["run-dir"] == "reports/offload-bench/runs" and ws / outputs["gate-dir"] == gate_dir
    files = {k: ws / outputs[k] for k in ("junit", "markdown", "benchmark-json", "bmf")}
    if code == 2:  # a usage error: nothing judged, nothing written
        assert not any(p.exists() for p in files.values()) and runner.summaries["perf / Gate"] == ""
        return
    assert all(p.is_file() for p in files.values()), files
    markdown = files["markdown"].read_text()
    assert runner.summaries["perf / Gate"] == markdown + "\n"  # appended once, by the gate
    assert f"## offload-bench gate: {'FAIL' if code else 'PASS'}" in markdown
    suite = ET.parse(files["junit"]).getroot().find("testsuite")
    assert suite is not None and (suite.get("failures") != "0") == bool(code)
    assert json.loads(files["bmf"].read_text())["offload"]["latency-p95-ms"]["value"] > (50 if code else 0)


def test_an_output_folder_holding_earlier_runs_is_refused_before_anything_runs(tmp_path: Path) -> None:
    ws = tmp_path / "user-repo"
    (ws / "out" / "runs" / "old-run").mkdir(parents=True)  # the gate would judge it with the new runs
    runner = Runner(tmp_path, Path(sys.executable).parent.parent, exits={"Folders": 2})
    step = {"name": "perf", "uses": "<owner>/offload-bench@<ref>", "with": {"output": "out"}}
    outputs = runner.action(step, {}, runner.base_env(), ws, REPO)
    assert runner.log == ["perf / Folders"] and not (ws / "out" / "gate").exists()
    assert set(outputs.values()) == {""}
