"""Real concurrency for tests: threads with their own PostgreSQL connections.

Used with `@pytest.mark.django_db(transaction=True)`, so every thread's work really
commits and the database, not a mock, decides each race. Assertions belong on the
final state of the database, never on timings: JOIN_TIMEOUT only detects a hang.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.signals import got_request_exception
from django.db import connection, transaction

# How long a thread may run before the test calls it stuck: a hang detector, not a timing assertion.
JOIN_TIMEOUT = 60


class Threads:
    """Each job in its own thread (own DB connection), all released together by a barrier."""

    def __init__(self, jobs: list[Callable[[], Any]]) -> None:
        self.results: list[Any] = [None] * len(jobs)
        self.failures: list[str] = []
        self._barrier = threading.Barrier(len(jobs))
        self._threads = [
            threading.Thread(target=self._work, args=(i, job), daemon=True) for i, job in enumerate(jobs)
        ]

    def _work(self, index: int, job: Callable[[], Any]) -> None:
        try:
            self._barrier.wait(timeout=JOIN_TIMEOUT)
            self.results[index] = job()
        except BaseException:
            self.failures.append(traceback.format_exc())
        finally:
            connection.close()

    def _server_error(self, sender: Any, request: Any = None, **kwargs: Any) -> None:
        # Sent synchronously from the view's `except` block, in the failing thread.
        if threading.current_thread() in self._threads:
            self.failures.append(f"{request.method} {request.path}\n{traceback.format_exc()}")

    def start(self) -> Threads:
        got_request_exception.connect(self._server_error)
        for thread in self._threads:
            thread.start()
        return self

    @property
    def finished(self) -> int:
        return sum(not thread.is_alive() for thread in self._threads)

    def join(self) -> list[Any]:
        """The jobs' results; fails on any exception or server error (with its traceback) or stuck thread."""
        try:
            for thread in self._threads:
                thread.join(timeout=JOIN_TIMEOUT)
        finally:
            got_request_exception.disconnect(self._server_error)
        stuck = sum(thread.is_alive() for thread in self._threads)
        assert stuck == 0, f"{stuck} threads never finished (deadlock or lock wait)"
        assert not self.failures, (
            f"{len(self.failures)} jobs raised or answered a server error; first:\n{self.failures[0]}"
        )
        return self.results


def run_concurrently(jobs: list[Callable[[], Any]]) -> list[Any]:
    return Threads(jobs).start().join()


@contextmanager
def held_in_transaction(write: Callable[[], Any]) -> Iterator[None]:
    """`write` runs in another connection's transaction, which commits when the block ends.

    Whatever `write` locks or inserts stays locked (or invisible) to everyone else until
    then, so a test can force an interleaving instead of hoping for it.
    """
    written, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def hold() -> None:
        try:
            with transaction.atomic():
                write()
                written.set()
                release.wait(timeout=JOIN_TIMEOUT)
        except BaseException as exc:  # surfaced below, in the test's thread
            failures.append(exc)
            written.set()
        finally:
            connection.close()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert written.wait(timeout=JOIN_TIMEOUT)
    try:
        yield
    finally:
        release.set()
        holder.join(timeout=JOIN_TIMEOUT)
    assert not failures, failures


def lock_waiters() -> int:
    """Backends of this test database that are waiting for a lock right now."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + JOIN_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting until {what}"
        time.sleep(0.01)
