"""The Dramatiq broker and actor, run by Dramatiq's own worker from this folder: `dramatiq tasks`.

REDIS_URL is the broker's Redis (and the result backend's, when the settings store results). DRAMATIQ_SETTINGS
names the settings module: settings_defaults (Dramatiq's defaults) or settings_at_least_once (results kept, retries fitted).
"""

from __future__ import annotations

import importlib
import os

import dramatiq
import work
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("DRAMATIQ_QUEUE", "default")
SETTINGS = importlib.import_module(os.environ.get("DRAMATIQ_SETTINGS", "settings_defaults"))

broker = RedisBroker(url=REDIS_URL)
backend: RedisBackend | None = None
if SETTINGS.RESULT_TTL_MS is not None:  # the Results middleware: results stored under dramatiq-results keys
    backend = RedisBackend(url=REDIS_URL)
    broker.add_middleware(Results(backend=backend, store_results=True, result_ttl=SETTINGS.RESULT_TTL_MS))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, **SETTINGS.ACTOR)
def divide(x: float, y: float, username: str) -> float:
    """The offloaded job: the same work the sync route does inline (ZeroDivisionError fails it)."""
    return work.divide(x, y)
