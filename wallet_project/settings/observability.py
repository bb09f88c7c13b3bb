"""Logging and the Prometheus /metrics endpoint.

Tracing is configured by the standard OTEL_* variables, which foundation.tracing reads
itself (OpenTelemetry's own names and semantics; `.env.example` lists them).
"""

from foundation.logging import logging_config

from .environment import env, env_items, secret

# "console" (human-readable) or "json" (one JSON object per line; the production default).
LOG_FORMAT = env.str("LOG_FORMAT", default="console")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = logging_config(fmt=LOG_FORMAT, level=LOG_LEVEL)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # workers log through LOGGING too

# --- Metrics (Prometheus, GET /metrics) -----------------------------------------
# A scraper must present this bearer token (if set) and come from these networks (if set).
METRICS_TOKEN = secret("METRICS_TOKEN")
METRICS_ALLOWED_NETWORKS = env_items("METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"])
