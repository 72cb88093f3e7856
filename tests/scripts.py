"""Console scripts of the environment the tests run in, found beside the running interpreter (any venv, tox,
pipx or CI image: never a fixed `.venv` in the checkout)."""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path


def console_script(name: str) -> str:
    """The path of console script `name` installed with this interpreter's packages."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        found = shutil.which(name, path=folder)
        if found:
            return found
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"console script {name!r} not found beside {sys.executable} nor on PATH")
    return found
