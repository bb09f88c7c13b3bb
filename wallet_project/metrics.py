"""Prometheus metrics: what the service records, and the /metrics endpoint that serves them.

Everything is named `wallet_*`. Label values come from bounded sets only (URL pattern
names, HTTP methods, status codes, movement kinds, currencies, error codes, quota
scopes), never from raw paths or ids, so the number of series stays bounded.

The recording functions never raise: a metrics failure must not turn a committed
transfer into a 500. They log instead.

Several processes (gunicorn workers, Celery workers, management commands) share their
numbers when PROMETHEUS_MULTIPROC_DIR points at one directory, set before the process
starts (prometheus_client decides at import time): each process writes its own files
there and `metrics_view` aggregates them. Without it the process's default registry
is served, which is right for one process (`make run`).

The Celery queue length is read from Redis when /metrics is scraped, with a short
timeout; Redis being down reports `wallet_celery_queue_up 0` instead of failing (and
wallet_project.store_health, not every scrape, says so in the log).
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, ParamSpec
from urllib.parse import urlsplit

# prometheus_client switches to multiprocess mode when the variable merely exists;
# an empty value means "one process" here, so drop it before the import below.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from wallet_project.errors import problem_body, problem_response
from wallet_project.store_health import BROKER, redis_health

logger = logging.getLogger(__name__)

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if MULTIPROC_DIR:
    os.makedirs(MULTIPROC_DIR, exist_ok=True)

# `*_created` series double the series count and say nothing an operator needs.
disable_created_metrics()

DEFAULT_ALLOWED_NETWORKS = "127.0.0.1/32,::1/128"
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
def record_redis_error(*, store: str, operation: str) -> None:
    """One failed Redis operation (wallet_project.store_health reports them)."""
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


# --- Request timing -----------------------------------------------------------


def route_of(request: HttpRequest) -> str:
    """The resolved URL pattern's name (or its route), never the raw path."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return match.view_name or match.route or "unmatched"


class MetricsMiddleware:
    """Counts and times every request. Goes first in MIDDLEWARE so it sees every answer."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = self.get_response(request)
            status = response.status_code
            return response
        finally:
            observe_request(
                route=route_of(request),
                method=request.method or "",
                status=status,
                seconds=time.perf_counter() - started,
            )


# --- Celery queue length ------------------------------------------------------


def _redis_url(broker_url: Any) -> str | None:
    """The broker URL as redis-py understands it, or None if the broker is not Redis."""
    if isinstance(broker_url, (list, tuple)):
        broker_url = broker_url[0] if broker_url else ""
    url = str(broker_url or "").split(";")[0].strip()  # kombu failover lists: use the first
    scheme = urlsplit(url).scheme
    if scheme in {"redis", "rediss", "unix"}:
        return url
    if scheme == "redis+socket":
        return "unix" + url[len("redis+socket") :]
    return None


def _queue_names() -> list[str]:
    names = [settings.CELERY_TASK_DEFAULT_QUEUE] if getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "") else []
    for queue in getattr(settings, "CELERY_TASK_QUEUES", None) or ():
        name = getattr(queue, "name", queue)  # kombu.Queue objects, or names (dict keys)
        if isinstance(name, str) and name not in names:
            names.append(name)
    return names


class CeleryQueueCollector(Collector):
    """Pending messages per Celery queue, read from the Redis broker at scrape time.

    kombu's Redis transport keeps a queue as a list named after it, plus one list per
    non-zero priority step named `<queue><sep><priority>` (kombu.transport.redis
    `_q_for_pri`); its own `_size` sums their LLEN, and so does this. Honours the
    transport options `global_keyprefix`, `sep` and `priority_steps`.
    """

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # collect() talks to Redis; never do that at registration time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        url = _redis_url(getattr(settings, "CELERY_BROKER_URL", ""))
        if url is None:
            return
        up = GaugeMetricFamily(
            "wallet_celery_queue_up", "1 if the Celery broker (Redis) answered the scrape."
        )
        try:
            lengths = self._lengths(url)
        except (redis.RedisError, OSError) as exc:
            redis_health.failed(BROKER, "queue_length", exc)  # logs once per outage, not per scrape
            up.add_metric([], 0)
            yield up
            return
        redis_health.succeeded(BROKER)
        up.add_metric([], 1)
        yield up
        family = GaugeMetricFamily(
            "wallet_celery_queue_length", "Messages waiting in a Celery queue.", labels=["queue"]
        )
        for name, length in lengths.items():
            family.add_metric([name], length)
        yield family

    def _lengths(self, url: str) -> dict[str, int]:
        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
        prefix = options.get("global_keyprefix", "")
        sep = options.get("sep", "\x06\x16")
        steps = options.get("priority_steps", [0, 3, 6, 9])
        timeout = float(getattr(settings, "REDIS_TIMEOUT", 0.25))
        names = _queue_names()
        client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
        )
        try:
            with client.pipeline(transaction=False) as pipe:
                for name in names:
                    for step in steps:
                        pipe.llen(f"{prefix}{name}{sep}{step}" if step else f"{prefix}{name}")
                sizes = pipe.execute()
        finally:
            client.close()
        per_queue = len(steps)
        return {name: sum(sizes[i * per_queue : (i + 1) * per_queue]) for i, name in enumerate(names)}


QUEUE_COLLECTOR = CeleryQueueCollector()
if not MULTIPROC_DIR:
    REGISTRY.register(QUEUE_COLLECTOR)


# --- Multiprocess -------------------------------------------------------------


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook (`child_exit = ...` in the gunicorn config): forget a dead worker's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)


def scrape() -> bytes:
    """The exposition text: every process's numbers in multiprocess mode, else this process's."""
    if not MULTIPROC_DIR:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(QUEUE_COLLECTOR)
    return generate_latest(registry)


# --- The endpoint -------------------------------------------------------------

_FORWARDED_FOR = re.compile(r'for="?\[?([^\]";,]+)', re.IGNORECASE)


@functools.lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for item in spec:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            logger.error("METRICS_ALLOWED_NETWORKS: %r is not a network; ignored", item)
    return tuple(networks)


def _allowed_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None:
    """The configured networks; None when the setting is empty (no network restriction)."""
    spec = getattr(settings, "METRICS_ALLOWED_NETWORKS", DEFAULT_ALLOWED_NETWORKS)
    items = spec.split(",") if isinstance(spec, str) else list(spec or ())
    items = tuple(item.strip() for item in items if item and item.strip())
    return _networks(items) if items else None


def _addresses(request: HttpRequest) -> list[str]:
    """The peer and every hop a proxy says the request came through.

    All of them must be allowed: a forwarded header can only add addresses to check,
    so spoofing one never lets a request in, while a public client reaching the app
    through a local proxy is refused although the proxy itself is local.
    """
    meta = request.META
    found = [meta.get("REMOTE_ADDR", "")]
    found += [part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if meta.get("HTTP_X_REAL_IP", "").strip():
        found.append(meta["HTTP_X_REAL_IP"].strip())
    found += _FORWARDED_FOR.findall(meta.get("HTTP_FORWARDED", ""))
    return found


def _address_allowed(address: str, networks: Iterable[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


def _refusal(request: HttpRequest) -> str | None:
    """Why this scraper is refused, or None. Every configured check must pass."""
    token = getattr(settings, "METRICS_TOKEN", "") or ""
    networks = _allowed_networks()
    if not token and networks is None:
        return "neither METRICS_TOKEN nor METRICS_ALLOWED_NETWORKS is set"
    if token:
        scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            supplied.strip().encode("utf-8"), token.encode("utf-8")
        ):
            return "missing or wrong bearer token"
    if networks is not None and not all(_address_allowed(a, networks) for a in _addresses(request)):
        return "address outside METRICS_ALLOWED_NETWORKS"
    return None


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics in the Prometheus text format. Touches no database."""
    if request.method not in ("GET", "HEAD"):
        body = problem_body(
            status=405, code="method_not_allowed", title="Method not allowed", detail="Use GET."
        )
        return problem_response(body, headers={"Allow": "GET, HEAD"})
    reason = _refusal(request)
    if reason is not None:
        logger.warning("metrics scrape refused from %s: %s", request.META.get("REMOTE_ADDR", "?"), reason)
        body = problem_body(
            status=403,
            code="permission_denied",
            title="Permission denied",
            detail="Metrics are not available to you.",
        )
        return problem_response(body)
    response = HttpResponse(scrape(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
