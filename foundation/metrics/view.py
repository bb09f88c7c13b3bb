"""GET /metrics in the Prometheus text format (allowed scrapers only); gunicorn's clean-up hook."""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import os
import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from foundation.errors import problem_body, problem_response
from foundation.metrics.celery_queue import QUEUE_COLLECTOR
from foundation.metrics.registry import MULTIPROC_DIR

logger = logging.getLogger(__name__)

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

DEFAULT_ALLOWED_NETWORKS = "127.0.0.1/32,::1/128"
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
