"""One helper hides secrets before they reach a log, the console or a run folder (issue 14.9).

A URL keeps its scheme, user, host, port and path but loses its password; a mapping entry whose name says it
is a secret (TOKEN, PASSWORD, SECRET, ...) is masked whatever its value; everything else passes unchanged.
"""

from __future__ import annotations

import re
from typing import Any, Final

MASK: Final = "***"
_SECRET_NAME = re.compile(
    r"TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIAL|API_?KEY|PRIVATE_?KEY|AUTH", re.IGNORECASE
)
# scheme://[user]:password@  (the password is anything up to the '@', no '/' or space inside)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*):(?P<password>[^@/\s]+)@")


def is_secret_name(name: str) -> bool:
    """True when a variable or key name says it holds a secret (e.g. OFFLOAD_ADMIN_TOKEN)."""
    return bool(_SECRET_NAME.search(name))


def redact(value: Any) -> Any:
    """A copy of value with URL passwords and secret-named entries masked (strings, mappings, lists)."""
    if isinstance(value, str):
        return _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", value)
    if isinstance(value, dict):
        return {
            k: (MASK if isinstance(k, str) and is_secret_name(k) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    return value
