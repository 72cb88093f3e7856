"""docker-compose.yml: no Docker engine here, so check that it parses and that everything it names exists."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

from service.settings import Settings, WorkProfile
from tests.service.conftest import REPO

COMPOSE = REPO / "docker-compose.yml"
SUT = {"redis", "api", "worker"}  # the system under test; the Locust services are the load (profile "load")
LOAD = {"locust-master", "locust-worker"}


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _has_main_guard(module: str) -> bool:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, f"python -m {module}: module not found"
    tree = ast.parse(Path(spec.origin).read_text())
    return any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body)


def test_services_and_entry_points_exist() -> None:
    services = _compose()["services"]
    assert set(services) == SUT | LOAD
    assert services["api"]["command"] == ["python", "-m", "service.api"]
    assert services["worker"]["command"] == ["python", "-m", "service.worker"]
    for name in ("api", "worker"):
        module = services[name]["command"][2]
        assert _has_main_guard(module), f"{module} has no __main__ entry"
    assert (REPO / "Dockerfile").exists()


def test_service_image_installs_only_the_services_own_needs() -> None:
    """The Dockerfile installs requirements/service.txt then the package with --no-deps; that list is part of
    the tool's install (pyproject reads it) and holds none of the harness's heavy parts."""
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install -r requirements/service.txt" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    service = _requirement_names(REPO / "requirements" / "service.txt")
    assert {"fastapi", "uvicorn", "arq", "redis"} <= service
    assert not service & {"locust", "pandas", "matplotlib", "scipy", "numpy", "pyarrow", "typer", "rich"}
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    files = pyproject["tool"]["setuptools"]["dynamic"]["dependencies"]["file"]
    assert files == ["requirements/service.txt", "requirements/harness.txt"]
    assert "locust" in _requirement_names(REPO / "requirements" / "harness.txt")


def _requirement_names(path: Path) -> set[str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return {
        re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0].lower()
        for line in lines
        if line and not line.startswith("#")
    }


def test_redis_has_aof_and_every_service_a_healthcheck() -> None:
    services = _compose()["services"]
    command = services["redis"]["command"]
    assert command[0] == "redis-server" and command[command.index("--appendonly") + 1] == "yes"
    for name in SUT:
        svc = services[name]
        test = svc["healthcheck"]["test"]
        assert test[0] == "CMD", name
        if test[1] == "python":  # the inline probe must at least be valid Python
            compile(test[3], f"<{name} healthcheck>", "exec")


def test_api_published_on_loopback_only_and_worker_scalable() -> None:
    services = _compose()["services"]
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"]
    assert services["api"]["environment"]["OFFLOAD_API_HOST"] == "0.0.0.0"
    # --scale worker=N needs no fixed container name and no published port
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]


def test_every_offload_variable_is_a_setting(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fields = set(Settings.model_fields) | set(WorkProfile.model_fields)
    for name in set(SUT) - {"redis"}:  # redis: only REDISCLI_AUTH, see the password test
        for var in _compose()["services"][name].get("environment", {}):
            assert var.startswith("OFFLOAD_"), (name, var)
            assert var.removeprefix("OFFLOAD_").lower() in fields, f"{name}: {var} is not a setting"
    for name in ("api", "worker"):  # the values parse and validate as the container would read them
        with monkeypatch.context() as m:
            for var, value in _compose()["services"][name]["environment"].items():
                m.setenv(var, str(value))
            settings = Settings()
        assert settings.redis_url == "redis://:${REDIS_PASSWORD}@redis:6379/0" and settings.work.pages == 10


def _interpolated(value: object) -> str:
    """A compose value with ${VAR:-default} replaced by its default, as compose does when VAR is unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


def test_locust_services_parse_as_a_master_and_its_scalable_workers(tmp_path: Path) -> None:
    """The load services: only with the "load" profile, their commands parse with Locust's parser (our
    arguments included, LOCUST_* env applied) and the workers find the master by its service name."""
    services = _compose()["services"]
    master, worker = services["locust-master"], services["locust-worker"]
    assert master["profiles"] == worker["profiles"] == ["load"]
    assert "container_name" not in worker and "ports" not in worker  # --scale locust-worker=N
    assert worker["image"] == master["image"] and "build" in master
    assert "pip install ." in master["build"]["dockerfile_inline"]
    assert worker["command"][worker["command"].index("--master-host") + 1] == "locust-master"
    script = (
        "import json, sys; import loadtests._hooks; from locust.argument_parser import parse_options; "
        "o = parse_options(sys.argv[1:]); "
        "print(json.dumps({k: getattr(o, k) for k in ('master', 'worker', 'master_host', 'expect_workers', "
        "'host', 'mode', 'arrival_rate', 'run_time', 'redis_url', 'headless', 'locustfile')}))"
    )
    parsed = {}
    for name, svc in (("locust-master", master), ("locust-worker", worker)):
        command = svc["command"]
        assert command[:3] == ["locust", "-f", "loadtests/"] and (REPO / "loadtests").is_dir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
        env.update({k: _interpolated(v) for k, v in svc.get("environment", {}).items()})
        assert all(k.startswith("LOCUST_") for k in svc.get("environment", {})), name
        out = subprocess.run(
            [sys.executable, "-c", script, *command[1:]],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert out.returncode == 0, (name, out.stderr[-2000:])
        parsed[name] = json.loads(out.stdout.strip().splitlines()[-1])
    assert parsed["locust-master"]["master"] and parsed["locust-master"]["headless"]
    assert (
        parsed["locust-master"]["expect_workers"] == 2
        and parsed["locust-master"]["host"] == "http://api:8000"
    )
    assert parsed["locust-master"]["mode"] == "offload" and parsed["locust-master"]["arrival_rate"] == 200.0
    assert parsed["locust-master"]["redis_url"] == "redis://:${REDIS_PASSWORD}@redis:6379/0"
    assert parsed["locust-worker"]["worker"] and parsed["locust-worker"]["master_host"] == "locust-master"


def test_compose_redis_requires_a_password_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # issue 14.7: the worker unpickles what it finds in Redis; only the stack's own services may write there
    services = _compose()["services"]
    command = services["redis"]["command"]
    assert command[command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")
    assert services["redis"]["environment"]["REDISCLI_AUTH"] == "${REDIS_PASSWORD}"  # the healthcheck's ping
    for name in ("api", "worker"):
        url = services[name]["environment"]["OFFLOAD_REDIS_URL"]
        assert url == "redis://:${REDIS_PASSWORD}@redis:6379/0", name
        monkeypatch.setenv("OFFLOAD_REDIS_URL", url.replace("${REDIS_PASSWORD}", "s3cret"))
        assert Settings().redis_url == "redis://:s3cret@redis:6379/0"
