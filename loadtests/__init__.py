"""Locust scenarios for offload-bench: `locust -f loadtests/ --host http://127.0.0.1:PORT`.

Locust loads every ``*.py`` here that does not start with ``_`` as a locustfile; the ``_``-modules are helpers
(options, arrivals, capture, job side) imported by the locustfiles. Defaults: ``loadtests/locust.conf``.
"""
