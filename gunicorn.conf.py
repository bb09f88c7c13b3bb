"""gunicorn settings for the API (used by `make serve` and the container).

Worker count: two sync workers per CPU core unless WEB_CONCURRENCY says otherwise. On the
measured 2-core host (PostgreSQL on the same machine) two per core were as fast as one per
core, and kept transfers flowing while a wallet's row lock was held for seconds elsewhere:
with one per core, the two requests queued on that wallet held both workers
(docs/performance.md, "Server and worker count", "A row lock held for seconds").
Each worker holds persistent database connections (DB_CONN_MAX_AGE).
"""

import multiprocessing
import os

from foundation.metrics.view import child_exit  # noqa: F401  (Prometheus multiprocess clean-up

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * multiprocessing.cpu_count())
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# A request that takes longer than this is killed; money transactions take milliseconds.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM, workers finish in-flight requests (and their money transactions) first.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "0"))
# The application writes its own structured access log line (logger "wallet.access").
accesslog = None
errorlog = "-"
