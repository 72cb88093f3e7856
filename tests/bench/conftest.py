"""bench tests reuse the service's real-uvicorn API fixtures."""

from tests.service.conftest import api_url, start_api  # noqa: F401  (pytest fixtures, re-exported)
