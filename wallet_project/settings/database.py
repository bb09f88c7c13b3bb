"""PostgreSQL: the primary (DATABASE_URL), its connection options, the optional read replica.

Also how a request recovers from a lost connection (DB_RECONNECT_*). The service runs on
PostgreSQL only: any other DATABASE_URL stops it at start-up.
"""

from django.core.exceptions import ImproperlyConfigured

from foundation.db_router import database_from_url

from .environment import env

_POSTGRESQL = "django.db.backends.postgresql"

# DATABASE_URL selects the PostgreSQL database (`make run` sets it to its embedded one).
# It goes through database_from_url() rather than env.db(): that also accepts a libpq
# multi-host list (primary and standby, docs/failover.md), which env.db() cannot parse.
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/wallet"
DATABASE_URL = env.str("DATABASE_URL", default=DEFAULT_DATABASE_URL)
_conn_max_age = env.int("DB_CONN_MAX_AGE", default=60)
# A persistent connection is not pinged before each request unless DB_CONN_HEALTH_CHECKS
# is on: that check is a round trip per request. A connection found dead instead makes a
# money request reconnect and retry, and a read run once more (foundation.middleware).
DB_CONN_HEALTH_CHECKS = env.bool("DB_CONN_HEALTH_CHECKS", default=False)


def _postgresql(url: str, variable: str) -> dict:
    config = database_from_url(url, conn_max_age=_conn_max_age, conn_health_checks=DB_CONN_HEALTH_CHECKS)
    if config["ENGINE"] != _POSTGRESQL:
        raise ImproperlyConfigured(f"the service runs on PostgreSQL only ({variable}=postgres://...)")
    return config


DATABASES = {"default": _postgresql(DATABASE_URL, "DATABASE_URL")}
# A money transaction that cannot get a wallet's row lock in time fails fast
# (503 service_busy) instead of piling up behind a stuck one.
# Server-side parameter binding, and prepared statements for what a connection runs
# again and again (from its DB_PREPARE_THRESHOLD-th run; 0 turns preparing off):
# PostgreSQL then skips parsing and planning them. Django leaves both off by default
# for the sake of connection poolers that cannot carry prepared statements.
_options = DATABASES["default"].setdefault("OPTIONS", {})
_options["server_side_binding"] = env.bool("DB_SERVER_SIDE_BINDING", default=True)
_options["prepare_threshold"] = env.int("DB_PREPARE_THRESHOLD", default=5) or None
_options["options"] = f"-c lock_timeout={env.int('DB_LOCK_TIMEOUT_MS', default=5000)}"
# Through PgBouncer in transaction mode a server-side cursor (QuerySet.iterator() outside a
# transaction declares one WITH HOLD) could be read on another server connection than the one
# it lives on: DB_DISABLE_SERVER_SIDE_CURSORS=true fetches such results in one go instead.
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = env.bool(
    "DB_DISABLE_SERVER_SIDE_CURSORS", default=False
)
# A money request waits for its wallets' row locks in attempts of DB_LOCK_ATTEMPT_MS; between
# attempts it rolls back (letting go of any wallet it had locked) and waits a little, until
# DB_LOCK_TIMEOUT_MS has passed (then 503 service_busy). Waiting in one piece, a request
# queued on a stuck row would keep its other wallet locked all that time, and the requests
# queued on that one theirs: one stuck row would stop every transfer (docs/performance.md).
DB_LOCK_TIMEOUT_MS = env.int("DB_LOCK_TIMEOUT_MS", default=5000)
DB_LOCK_ATTEMPT_MS = env.int("DB_LOCK_ATTEMPT_MS", default=50)

# Optional read replica (a hot standby): only history and transfer lists read from it,
# never a money decision and never right after the caller's own write (docs/failover.md).
# It takes none of the options above: it only ever answers reads.
DATABASE_REPLICA_URL = env.str("DATABASE_REPLICA_URL", default="")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = _postgresql(DATABASE_REPLICA_URL, "DATABASE_REPLICA_URL")
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["foundation.db_router.PrimaryReplicaRouter"]
# Seconds a user's list reads stay on the primary after they make a write request.
REPLICA_PIN_SECONDS = env.int("REPLICA_PIN_SECONDS", default=10)

# A money request whose database connection is lost (failover, restart) reconnects and
# retries this many times, waiting DB_RECONNECT_BACKOFF_SECONDS, doubling each time.
DB_RECONNECT_ATTEMPTS = env.int("DB_RECONNECT_ATTEMPTS", default=5)
DB_RECONNECT_BACKOFF_SECONDS = env.float("DB_RECONNECT_BACKOFF_SECONDS", default=0.2)
