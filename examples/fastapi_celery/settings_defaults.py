"""Celery's defaults: early ack, no retry, results kept result_expires = 1 day.

A message is acked just before its task runs: a task whose worker is SIGKILLed while running it is gone (never
runs again, no result); messages the worker had prefetched but not started stay in `unacked` and come back
after visibility_timeout = 1 hour. Chosen with CELERY_SETTINGS=settings_defaults (the default).
"""

from __future__ import annotations

# Celery's own default, said here only to keep its start-up deprecation warning out of the worker's log
broker_connection_retry_on_startup = True
