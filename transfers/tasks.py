"""Celery tasks: thin and safe to repeat. Each calls a service that also runs without Celery."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from celery import shared_task

from transfers.holds import holds_expire
from transfers.idempotency import idempotency_cleanup
from transfers.ledger_chain import ledger_checkpoint_create
from transfers.reconciliation import reconciliation_run


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=False)
def reconcile_ledger(
    incremental: bool = False, wallet_id: str | None = None, since: str | None = None
) -> dict:
    """Read-only apart from the run it records, so a redelivery only adds another run."""
    run = reconciliation_run(
        incremental=incremental,
        wallet_id=UUID(wallet_id) if wallet_id else None,
        since=datetime.fromisoformat(since) if since else None,
    )
    return {
        "run_id": run.id,
        "status": run.status,
        "wallets_checked": run.wallets_checked,
        "transfers_checked": run.transfers_checked,
        "discrepancies": run.discrepancy_count,
    }


@shared_task(acks_late=True, reject_on_worker_lost=True)
def cleanup_idempotency_records(older_than_hours: int | None = None) -> int:
    """Deleting what is already gone deletes nothing, so repeating is harmless."""
    return idempotency_cleanup(older_than_hours=older_than_hours)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def expire_holds() -> int:
    """Expiring what is already released changes nothing, so repeating is harmless."""
    return holds_expire()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def ledger_checkpoint() -> dict:
    """A redelivery records another checkpoint of what changed since this one (usually
    nothing): harmless. Two at once: one fails on the unique chain of checkpoints."""
    checkpoint = ledger_checkpoint_create()
    return {
        "checkpoint_id": checkpoint.id,
        "wallets": checkpoint.wallet_count,
        "root_hash": bytes(checkpoint.root_hash).hex(),
    }
