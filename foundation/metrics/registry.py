"""Prometheus metrics: every series the service records, and the functions that record them.

Everything is named `wallet_*`. Label values come from bounded sets only (URL pattern
names, HTTP methods, status codes, movement kinds, currencies, error codes, quota
scopes), never from raw paths or ids, so the number of series stays bounded.

The recording functions never raise: a metrics failure must not turn a committed
transfer into a 500. They log instead.

Several processes (gunicorn workers, Celery workers, management commands) share their
numbers when PROMETHEUS_MULTIPROC_DIR points at one directory, set before the process
starts (prometheus_client decides at import time): each process writes its own files
there and the /metrics view (foundation.metrics.view) aggregates them. Without it the
process's default registry is served, which is right for one process (`make run`).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from datetime import datetime
from typing import ParamSpec

# prometheus_client switches to multiprocess mode when the variable merely exists;
# an empty value means "one process" here, so drop it before the import below.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

logger = logging.getLogger(__name__)

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if MULTIPROC_DIR:
    os.makedirs(MULTIPROC_DIR, exist_ok=True)

# `*_created` series double the series count and say nothing an operator needs.
disable_created_metrics()

# HTTP methods are client-controlled: anything unusual is folded into "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
RATE_LIMIT_SCOPES = ("user", "money", "wallet_outgoing", "anon")
IDEMPOTENCY_OUTCOMES = ("replayed", "reused", "in_use")

# --- Metrics ------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "wallet_http_requests",
    "HTTP requests answered, by URL pattern name, method and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "wallet_http_request_duration_seconds",
    "Time to answer an HTTP request, by URL pattern name, method and status.",
    ["route", "method", "status"],
)
MONEY_MOVEMENTS = Counter(
    "wallet_money_movements",
    "Deposits, withdrawals and transfers attempted, by outcome (completed or the error code).",
    ["kind", "currency", "outcome"],
)
MONEY_MOVED = Counter(
    "wallet_money_moved_minor_units",
    "Money moved by completed movements, in the currency's minor units.",
    ["kind", "currency"],
)
HOLD_EVENTS = Counter(
    "wallet_hold_events",
    "Hold requests and changes, by action (created, captured, voided, expired) and outcome "
    "(completed or the error code). Captured money is also counted as a transfer or withdrawal.",
    ["action", "currency", "outcome"],
)
IDEMPOTENCY = Counter(
    "wallet_idempotency_events",
    "Idempotency-Key replays (replayed) and conflicts (reused with another body, in_use).",
    ["outcome"],
)
RATE_LIMITED = Counter(
    "wallet_rate_limit_rejections",
    "Requests refused by a quota (limited) or because the counter store was down (unavailable).",
    ["scope", "reason"],
)
LOCK_RETRIES = Counter(
    "wallet_row_lock_retries",
    "Money requests that let go of their locks and tried again after a lock attempt timed out.",
)
LOCK_WAIT = Histogram(
    "wallet_row_lock_wait_seconds",
    "Time spent acquiring wallet row locks (SELECT ... FOR NO KEY UPDATE).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REDIS_ERRORS = Counter(
    "wallet_redis_errors",
    "Redis operations that failed, by part (cache alias or broker) and operation (cache, rate_limit, "
    "replica_pin, queue_length). The log says once when Redis goes and once when it is back.",
    ["store", "operation"],
)
LEDGER_VIOLATIONS = Counter(
    "wallet_ledger_invariant_violations",
    "Money movements PostgreSQL refused at commit because a ledger invariant failed, by the "
    "constraint trigger that fired. Any increase needs an operator (docs/operations.md).",
    ["check"],
)
# Runs happen in Celery workers and management commands; with a shared multiprocess
# directory the web workers serve them. "max" of a timestamp is the latest finish;
# "mostrecent" is the count reported by whichever process wrote last.
RECONCILIATION_LAST_RUN = Gauge(
    "wallet_reconciliation_last_run_timestamp_seconds",
    "Unix time the last reconciliation run that completed (clean or with discrepancies) finished.",
    ["scope"],
    multiprocess_mode="max",
)
RECONCILIATION_DISCREPANCIES = Gauge(
    "wallet_reconciliation_discrepancies",
    "Discrepancies found by the last completed reconciliation run of this scope.",
    ["scope"],
    multiprocess_mode="mostrecent",
)
RECONCILIATION_RUNS = Counter(
    "wallet_reconciliation_runs",
    "Reconciliation runs finished, by scope and status (clean, discrepancies, failed).",
    ["scope", "status"],
)
# The latest ledger checkpoint (transfers.ledger_chain): its id, time and root hash, so the
# root is stored outside the database too. A gauge holds a float, so the 32-byte root is
# exported as 8 unsigned 32-bit parts (part 0 = the first 4 bytes, big-endian);
# docs/ledger.md shows how to put them back together. A bounded label set: parts 0-7.
LEDGER_CHECKPOINT_ID = Gauge(
    "wallet_ledger_checkpoint_id",
    "Id of the latest ledger checkpoint.",
    multiprocess_mode="max",
)
LEDGER_CHECKPOINT_TIME = Gauge(
    "wallet_ledger_checkpoint_timestamp_seconds",
    "Unix time of the latest ledger checkpoint.",
    multiprocess_mode="max",
)
LEDGER_CHECKPOINT_WALLETS = Gauge(
    "wallet_ledger_checkpoint_wallets",
    "Wallets whose chain head the latest ledger checkpoint recorded.",
    multiprocess_mode="mostrecent",
)
LEDGER_CHECKPOINT_ROOT = Gauge(
    "wallet_ledger_checkpoint_root_part",
    "The latest ledger checkpoint's root hash, as 8 unsigned 32-bit big-endian parts (part 0 first).",
    ["part"],
    multiprocess_mode="mostrecent",
)

# Webhooks. The endpoint label is the endpoint's id: one series per endpoint, bounded by
# WEBHOOK_MAX_ENDPOINTS_PER_USER times the users who set one up (operators ask "which
# receiver is failing", which no aggregate answers). Outcomes are a bounded set of codes.
WEBHOOK_ATTEMPTS = Counter(
    "wallet_webhook_delivery_attempts",
    "Webhook POSTs, by endpoint and outcome (succeeded, or the attempt's error code: http_error, "
    "timeout, connection_failed, tls_error, address_forbidden, unresolvable, url_invalid).",
    ["endpoint", "outcome"],
)
WEBHOOK_FAILURES = Counter(
    "wallet_webhook_deliveries_failed",
    "Webhook deliveries given up after WEBHOOK_RETRY_WINDOW_SECONDS of failed attempts, by endpoint.",
    ["endpoint"],
)
WEBHOOK_LAG = Histogram(
    "wallet_webhook_delivery_lag_seconds",
    "From an event's change to its successful delivery, by endpoint.",
    ["endpoint"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0),
)
WEBHOOK_BACKLOG = Gauge(
    "wallet_webhook_pending_deliveries",
    "Webhook deliveries not yet succeeded or given up (the dispatcher counts them each pass).",
    multiprocess_mode="mostrecent",
)
WEBHOOK_OLDEST_PENDING = Gauge(
    "wallet_webhook_oldest_pending_age_seconds",
    "Age of the oldest pending webhook delivery's event (0 when none): the delivery lag of the backlog.",
    multiprocess_mode="mostrecent",
)
WEBHOOK_DISPATCH_CURSOR = Gauge(
    "wallet_webhook_dispatched_sequence",
    "The outbox sequence up to which the dispatcher has turned events into deliveries.",
    multiprocess_mode="max",
)

# Known label sets start at 0, so rate() and alerts work before the first event.
for _outcome in IDEMPOTENCY_OUTCOMES:
    IDEMPOTENCY.labels(outcome=_outcome)
for _scope in RATE_LIMIT_SCOPES:
    for _reason in ("limited", "unavailable"):
        RATE_LIMITED.labels(scope=_scope, reason=_reason)


# --- Recording ----------------------------------------------------------------

P = ParamSpec("P")


def _never_raise(func: Callable[P, None]) -> Callable[P, None]:
    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            func(*args, **kwargs)
        except Exception:
            logger.exception("recording metric %s failed", func.__name__)

    return wrapper


def _method(method: str | None) -> str:
    method = (method or "").upper()
    return method if method in KNOWN_METHODS else "other"


@_never_raise
def observe_request(*, route: str, method: str, status: int, seconds: float) -> None:
    labels = {"route": route or "unmatched", "method": _method(method), "status": str(int(status))}
    HTTP_REQUESTS.labels(**labels).inc()
    HTTP_LATENCY.labels(**labels).observe(max(0.0, seconds))


@_never_raise
def record_movement(*, kind: str, currency: str, outcome: str, amount: int) -> None:
    """One movement attempt. `amount` (minor units) is counted only when the outcome is completed."""
    kind, currency, outcome = str(kind), str(currency or "none"), str(outcome)
    MONEY_MOVEMENTS.labels(kind=kind, currency=currency, outcome=outcome).inc()
    if outcome == "completed":
        if type(amount) is not int or amount < 0:
            raise ValueError(f"amount must be a non-negative int (minor units), got {amount!r}")
        MONEY_MOVED.labels(kind=kind, currency=currency).inc(amount)


@_never_raise
def record_hold(*, action: str, currency: str, outcome: str) -> None:
    """One hold request or change (created, captured, voided, expired) and how it ended."""
    HOLD_EVENTS.labels(action=str(action), currency=str(currency or "none"), outcome=str(outcome)).inc()


@_never_raise
def record_redis_error(*, store: str, operation: str) -> None:
    """One failed Redis operation (foundation.store_health reports them)."""
    REDIS_ERRORS.labels(store=str(store), operation=str(operation)).inc()


@_never_raise
def record_ledger_violation(check: str) -> None:
    """A ledger trigger (a bounded set of names) refused a commit."""
    LEDGER_VIOLATIONS.labels(check=str(check)).inc()


@_never_raise
def record_idempotency(outcome: str) -> None:
    """outcome: replayed, reused (same key, different request) or in_use (still running)."""
    IDEMPOTENCY.labels(outcome=str(outcome)).inc()


@_never_raise
def record_rate_limited(scope: str, reason: str = "limited") -> None:
    """A quota refused a request; reason "unavailable" when the counter store was down."""
    RATE_LIMITED.labels(scope=str(scope), reason=str(reason)).inc()


@_never_raise
def record_lock_retry() -> None:
    LOCK_RETRIES.inc()


@_never_raise
def observe_lock_wait(seconds: float) -> None:
    LOCK_WAIT.observe(max(0.0, seconds))


@_never_raise
def record_reconciliation(
    *, status: str, finished_at: datetime, discrepancies: int, scope: str = "full"
) -> None:
    """A finished run. A failed run is counted but leaves the last-run gauges alone:
    its partial count would hide what the last complete run found."""
    scope, status = str(scope), str(status)
    RECONCILIATION_RUNS.labels(scope=scope, status=status).inc()
    if status != "failed":
        RECONCILIATION_LAST_RUN.labels(scope=scope).set(finished_at.timestamp())
        RECONCILIATION_DISCREPANCIES.labels(scope=scope).set(int(discrepancies))


@_never_raise
def record_ledger_checkpoint(*, checkpoint_id: int, root: bytes, created_at: datetime, wallets: int) -> None:
    """A ledger checkpoint was committed: export its id, time, size and root hash."""
    if len(root) != 32:
        raise ValueError(f"a checkpoint root is 32 bytes, got {len(root)}")
    LEDGER_CHECKPOINT_ID.set(int(checkpoint_id))
    LEDGER_CHECKPOINT_TIME.set(created_at.timestamp())
    LEDGER_CHECKPOINT_WALLETS.set(int(wallets))
    for part in range(8):
        LEDGER_CHECKPOINT_ROOT.labels(part=str(part)).set(
            int.from_bytes(root[part * 4 : part * 4 + 4], "big")
        )


@_never_raise
def record_webhook_attempt(*, endpoint: str, error: str, lag_seconds: float | None) -> None:
    """One webhook POST; `error` "" is a success, whose lag (event to delivery) is observed."""
    endpoint = str(endpoint)
    WEBHOOK_ATTEMPTS.labels(endpoint=endpoint, outcome=str(error) or "succeeded").inc()
    if not error and lag_seconds is not None:
        WEBHOOK_LAG.labels(endpoint=endpoint).observe(max(0.0, lag_seconds))


@_never_raise
def record_webhook_failure(*, endpoint: str) -> None:
    """A delivery given up."""
    WEBHOOK_FAILURES.labels(endpoint=str(endpoint)).inc()


@_never_raise
def record_webhook_backlog(*, pending: int, oldest_age_seconds: float, dispatched_sequence: int) -> None:
    WEBHOOK_BACKLOG.set(int(pending))
    WEBHOOK_OLDEST_PENDING.set(max(0.0, oldest_age_seconds))
    WEBHOOK_DISPATCH_CURSOR.set(int(dispatched_sequence))
