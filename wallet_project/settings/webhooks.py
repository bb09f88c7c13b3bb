"""Webhooks: where endpoints may point, how deliveries are signed, timed and retried."""

from .environment import env, env_items, secret

# Endpoint URLs must be https and resolve only to public addresses (checked when an endpoint
# is saved and again before every delivery). Development and tests may relax both; the
# production settings refuse to start with either relaxed.
WEBHOOK_REQUIRE_HTTPS = env.bool("WEBHOOK_REQUIRE_HTTPS", default=True)
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env.bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", default=False)
# Fernet keys (comma-separated, newest first) that encrypt the endpoints' signing secrets
# at rest: the first encrypts, all decrypt, so a key is rotated by putting a new one first
# and running `manage.py webhook_secrets_reencrypt`. Without it (development, tests) a key
# is derived from DJANGO_SECRET_KEY, and `check --deploy` warns (webhooks.W001).
WEBHOOK_SECRET_KEYS = [key for key in secret("WEBHOOK_SECRET_KEYS").replace(" ", "").split(",") if key]
# One delivery attempt: connect and read timeouts (seconds), and how much of the answer is kept.
WEBHOOK_CONNECT_TIMEOUT_SECONDS = env.float("WEBHOOK_CONNECT_TIMEOUT_SECONDS", default=3.0)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# Retries: exponential from the base, capped, with jitter, for up to the window after the
# first attempt; then the delivery is failed.
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=10.0)
WEBHOOK_RETRY_MAX_SECONDS = env.float("WEBHOOK_RETRY_MAX_SECONDS", default=3600.0)
WEBHOOK_RETRY_WINDOW_SECONDS = env.float("WEBHOOK_RETRY_WINDOW_SECONDS", default=24 * 3600.0)
# An endpoint whose deliveries have failed without a single success for this long is
# disabled (with an audit row) when one of its deliveries is given up.
WEBHOOK_DISABLE_AFTER_SECONDS = env.float("WEBHOOK_DISABLE_AFTER_SECONDS", default=24 * 3600.0)
# After a secret rotation, deliveries are signed with the old secret too for this long.
WEBHOOK_SECRET_ROTATION_GRACE_SECONDS = env.int("WEBHOOK_SECRET_ROTATION_GRACE_SECONDS", default=24 * 3600)
WEBHOOK_MAX_ENDPOINTS_PER_USER = env.int("WEBHOOK_MAX_ENDPOINTS_PER_USER", default=16)
# The dispatcher (Celery beat): how often it turns new events into deliveries and sends the
# due ones, how many events one pass takes, and how long a delivery task may keep a lane.
WEBHOOK_DISPATCH_INTERVAL_SECONDS = env.float("WEBHOOK_DISPATCH_INTERVAL_SECONDS", default=1.0)
WEBHOOK_DISPATCH_BATCH_SIZE = env.int("WEBHOOK_DISPATCH_BATCH_SIZE", default=1000)
WEBHOOK_LANE_BUDGET_SECONDS = env.float("WEBHOOK_LANE_BUDGET_SECONDS", default=30.0)
# The Celery queue of the delivery tasks (default: CELERY_QUEUE's).
WEBHOOK_QUEUE = env.str("WEBHOOK_QUEUE", default="") or None
# Hosts (exact names) never accepted as endpoints, e.g. the service's own public name.
WEBHOOK_BLOCKED_HOSTS = env_items("WEBHOOK_BLOCKED_HOSTS", default=[])

from .redis import CELERY_BEAT_SCHEDULE  # noqa: E402

CELERY_BEAT_SCHEDULE = {
    **CELERY_BEAT_SCHEDULE,
    "dispatch-webhooks": {
        "task": "webhooks.tasks.dispatch_webhooks",
        "schedule": WEBHOOK_DISPATCH_INTERVAL_SECONDS,
        # A pass that waits in the queue longer than a few intervals is superseded by the next.
        "options": {"expires": max(5.0, 5 * WEBHOOK_DISPATCH_INTERVAL_SECONDS)},
    },
}
