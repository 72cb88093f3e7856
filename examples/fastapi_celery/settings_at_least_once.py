"""At least once: a task is acked when it has ended, and a task cut by a dead worker runs again.

`task_acks_late` keeps a message in kombu's `unacked` hash until its task has ended; `task_reject_on_worker_lost`
requeues it when a pool child dies under it (without it, Celery acks it as failed). A message left unacked
by a SIGKILLed worker is put back in the queue once `visibility_timeout` has passed (kombu's default: 1 hour),
here fitted to the job: VISIBILITY_TIMEOUT_S (30 s) is far more than a 50 ms job (WORK_MS) plus its wait behind
one prefetched message, and `task_time_limit` ends any task long before a healthy one could be redelivered
twice. `result_extended` stores the task's name, worker, queue and retries with its result. Chosen with
CELERY_SETTINGS=settings_at_least_once.
"""

from __future__ import annotations

import os

VISIBILITY_TIMEOUT_S = int(os.environ.get("VISIBILITY_TIMEOUT_S", "30"))

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1  # one message waits unacked per pool process, not 4
task_time_limit = VISIBILITY_TIMEOUT_S // 3  # a hard limit (prefork pool): kills a task stuck that long
broker_transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT_S}
result_extended = True
broker_connection_retry_on_startup = True
