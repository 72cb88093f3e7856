"""docker-compose.yml: no Docker engine here, so check that it parses and that everything it names exists."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Any

import yaml

from service.settings import Settings, WorkProfile
from tests.service.conftest import REPO

COMPOSE = REPO / "docker-compose.yml"


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
    assert set(services) == {"redis", "api", "worker"}
    assert services["api"]["command"] == ["python", "-m", "service.api"]
    assert services["worker"]["command"] == ["python", "-m", "service.worker"]
    for name in ("api", "worker"):
        module = services[name]["command"][2]
        assert _has_main_guard(module), f"{module} has no __main__ entry"
    assert (REPO / "Dockerfile").exists()
    assert "pip install ." in (REPO / "Dockerfile").read_text()


def test_redis_has_aof_and_every_service_a_healthcheck() -> None:
    services = _compose()["services"]
    command = services["redis"]["command"]
    assert command[0] == "redis-server" and command[command.index("--appendonly") + 1] == "yes"
    for name, svc in services.items():
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
    for name, svc in _compose()["services"].items():
        for var in svc.get("environment", {}):
            assert var.startswith("OFFLOAD_"), (name, var)
            assert var.removeprefix("OFFLOAD_").lower() in fields, f"{name}: {var} is not a setting"
    for name in ("api", "worker"):  # the values parse and validate as the container would read them
        with monkeypatch.context() as m:
            for var, value in _compose()["services"][name]["environment"].items():
                m.setenv(var, str(value))
            settings = Settings()
        assert settings.redis_url == "redis://redis:6379/0" and settings.work.pages == 10
