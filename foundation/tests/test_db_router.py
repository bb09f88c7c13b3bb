"""The primary/replica router: which alias each read and write goes to.

The `replica` alias here is a second connection to the test database (a test mirror),
so these tests assert routing decisions and where queries actually ran, not lag.
"""

from __future__ import annotations

import copy
import time

import dj_database_url
import pytest
from django.core.cache import cache
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext

from foundation import db_router
from foundation.db_router import (
    REPLICA_ALIAS,
    PrimaryReplicaRouter,
    ReadYourWritesMiddleware,
    database_from_url,
    pin_to_primary,
    replica_reads,
    user_pinned,
)
from transfers import services as ledger
from transfers.models import Transfer
from wallets.models import Wallet

ROUTER = "foundation.db_router.PrimaryReplicaRouter"


@pytest.fixture(autouse=True)
def _fresh_write_flag():
    # The "this context wrote" flag lives in a contextvar of the test thread; the
    # middleware resets it per request, the tests reset it per test.
    token = db_router._wrote.set(False)
    yield
    db_router._wrote.reset(token)


@pytest.fixture
def routed(settings):
    settings.DATABASE_ROUTERS = [ROUTER]
    settings.REPLICA_PIN_SECONDS = 10


@pytest.fixture(scope="module")
def _replica_alias(django_db_setup, django_db_blocker):
    """A `replica` alias: a second connection to the test database (a test mirror).

    Module-scoped so it exists before pytest-django sets up each test case, which
    checks the aliases a test may use.
    """
    config = copy.deepcopy(connections["default"].settings_dict)
    config["TEST"] = {**config.get("TEST", {}), "MIRROR": "default"}
    connections.settings[REPLICA_ALIAS] = config  # the same dict as settings.DATABASES
    yield
    with django_db_blocker.unblock():
        connections[REPLICA_ALIAS].close()
    del connections[REPLICA_ALIAS]
    del connections.settings[REPLICA_ALIAS]


# Committed data (transaction=True), so the replica connection sees what the primary wrote.
uses_replica = pytest.mark.django_db(transaction=True, databases=["default", REPLICA_ALIAS])


@pytest.fixture
def replica(_replica_alias, routed):
    return connections[REPLICA_ALIAS]


def funded_wallets(make_user, make_wallet) -> tuple[Wallet, Wallet]:
    owner = make_user()
    return make_wallet(owner, balance=1000), make_wallet(make_user())


@uses_replica
def test_reads_outside_replica_reads_go_to_the_primary(replica):
    assert Transfer.objects.all().db == "default"
    assert PrimaryReplicaRouter().db_for_read(Transfer) == "default"


@uses_replica
def test_list_reads_inside_replica_reads_run_on_the_replica(replica, make_user, make_wallet):
    source, destination = funded_wallets(make_user, make_wallet)
    ledger.transfer_create(
        source_wallet_id=source.id,
        destination_wallet_id=destination.id,
        initiated_by_id=source.owner_id,
        amount=250,
    )
    db_router._wrote.set(False)  # the set-up above wrote; a fresh request would not have

    transfers = Transfer.objects.filter(source_wallet_id=source.id, kind="transfer")
    with (
        CaptureQueriesContext(connections["default"]) as on_primary,
        CaptureQueriesContext(replica) as on_replica,
        replica_reads(),
    ):
        amounts = list(transfers.values_list("amount", flat=True))

    assert amounts == [250]
    assert len(on_replica.captured_queries) == 1
    assert len(on_primary.captured_queries) == 0


@uses_replica
def test_writes_and_locking_reads_go_to_the_primary_even_inside_replica_reads(replica):
    router = PrimaryReplicaRouter()
    with replica_reads():
        assert router.db_for_write(Wallet) == "default"
        assert Wallet.objects.select_for_update().db == "default"


@uses_replica
def test_a_write_in_this_context_sends_its_later_reads_to_the_primary(replica, make_user):
    owner = make_user()
    db_router._wrote.set(False)
    with replica_reads():
        assert Wallet.objects.all().db == REPLICA_ALIAS
        Wallet.objects.create(owner=owner, currency="USD")
        assert Wallet.objects.all().db == "default"


@uses_replica
def test_reads_inside_a_primary_transaction_stay_on_the_primary(replica):
    with transaction.atomic(), replica_reads():
        assert Transfer.objects.all().db == "default"


@uses_replica
def test_a_user_who_just_wrote_reads_the_primary_others_the_replica(replica, make_user):
    writer, reader = make_user(), make_user()
    db_router._wrote.set(False)
    pin_to_primary(writer.id)
    db_router._wrote.set(False)  # as in the writer's *next* request

    with replica_reads(user_id=writer.id):
        assert Transfer.objects.all().db == "default"
    with replica_reads(user_id=reader.id):
        assert Transfer.objects.all().db == REPLICA_ALIAS


@uses_replica
def test_the_pin_expires(replica, settings, make_user):
    settings.REPLICA_PIN_SECONDS = 1
    user = make_user()
    pin_to_primary(user.id)
    assert user_pinned(user.id)
    time.sleep(1.3)
    assert not user_pinned(user.id)


@pytest.mark.parametrize("failure", ["ignored", "raised"])
@uses_replica
def test_when_the_cache_cannot_answer_the_user_reads_the_primary(replica, monkeypatch, failure):
    def has_key(key, *args, **kwargs):
        if failure == "raised":
            raise ConnectionError("redis is down")
        return None  # what django-redis returns when it ignores a connection error

    monkeypatch.setattr(cache, "has_key", has_key)
    with replica_reads(user_id=42):
        assert Transfer.objects.all().db == "default"


def test_without_a_replica_alias_everything_reads_the_primary(routed, monkeypatch):
    # Another test in this module may have added the alias; this one runs without it.
    monkeypatch.delitem(connections.settings, REPLICA_ALIAS, raising=False)
    with replica_reads(user_id=7):
        assert Transfer.objects.all().db == "default"
    pin_to_primary(7)
    assert not cache.has_key(db_router._pin_key(7))  # nothing to pin against


def test_migrations_run_on_the_primary_only():
    router = PrimaryReplicaRouter()
    assert router.allow_migrate("default", "transfers") is True
    assert router.allow_migrate(REPLICA_ALIAS, "transfers") is False
    assert router.allow_relation(object(), object()) is True


@pytest.fixture
def pinning_middleware(settings):
    middleware = list(settings.MIDDLEWARE)
    position = middleware.index("foundation.middleware.RequestContextMiddleware") + 1
    middleware.insert(position, "foundation.db_router.ReadYourWritesMiddleware")
    settings.MIDDLEWARE = middleware


@uses_replica
def test_an_api_write_pins_the_user_and_an_api_read_does_not(
    replica, pinning_middleware, make_user, api_client
):
    writer, reader = make_user(), make_user()

    response = api_client(writer).post("/api/v1/wallets", {"currency": "USD"}, format="json")
    assert response.status_code == 201, response.content
    response = api_client(reader).get("/api/v1/wallets")
    assert response.status_code == 200, response.content

    assert user_pinned(writer.id)
    assert not user_pinned(reader.id)


@uses_replica
def test_the_middleware_clears_the_write_flag_between_requests(replica, rf):
    def view_that_writes(request):
        db_router._wrote.set(True)
        from django.http import HttpResponse

        return HttpResponse()

    middleware = ReadYourWritesMiddleware(view_that_writes)
    middleware(rf.get("/"))
    assert db_router._wrote.get() is False


# --- database_from_url ----------------------------------------------------------------


def test_a_multi_host_url_becomes_libpq_host_and_port_lists():
    config = database_from_url(
        "postgres://wallet:s3cret@10.0.0.1:5433,10.0.0.2,[::1]:6000/wallet"
        "?target_session_attrs=read-write&connect_timeout=3",
        conn_max_age=60,
        conn_health_checks=True,
    )
    assert config["HOST"] == "10.0.0.1,10.0.0.2,::1"
    assert config["PORT"] == "5433,5432,6000"
    assert config["USER"] == "wallet"
    assert config["PASSWORD"] == "s3cret"
    assert config["NAME"] == "wallet"
    assert config["OPTIONS"] == {"target_session_attrs": "read-write", "connect_timeout": 3}
    assert config["CONN_MAX_AGE"] == 60
    assert config["CONN_HEALTH_CHECKS"] is True


def test_a_single_host_url_parses_as_dj_database_url_does():
    url = "postgres://wallet@127.0.0.1:5432/wallet?sslmode=require"
    assert database_from_url(url) == dj_database_url.parse(url)


def test_a_bad_port_in_a_host_list_is_refused():
    with pytest.raises(ValueError, match="bad port"):
        database_from_url("postgres://u@h1:54x,h2:5432/db")
