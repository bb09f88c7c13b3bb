"""What the service allows: money rules (currencies, largest amount, idempotency, retries) and rate limits."""

from .environment import env, env_items

# --- Money --------------------------------------------------------------------
# ISO 4217 codes accepted for new wallets. Exponents live in foundation/currencies.py.
WALLET_CURRENCIES = env_items("WALLET_CURRENCIES", default=["USD", "EUR", "GBP", "NGN", "JPY", "KWD"])
# The largest amount one movement may carry, in minor units.
MAX_MOVEMENT_AMOUNT = env.int("MAX_MOVEMENT_AMOUNT", default=10**15)
# How long an idempotency record is kept (hours); never less than 24.
IDEMPOTENCY_KEY_TTL_HOURS = max(24, env.int("IDEMPOTENCY_KEY_TTL_HOURS", default=24))
# Holds: the lifetime of a hold created without one, and the longest allowed (seconds).
HOLD_DEFAULT_SECONDS = env.int("HOLD_DEFAULT_SECONDS", default=7 * 24 * 3600)
HOLD_MAX_SECONDS = env.int("HOLD_MAX_SECONDS", default=30 * 24 * 3600)
# Deadlock or serialization failures are retried this many times before giving up.
MONEY_TX_RETRIES = env.int("MONEY_TX_RETRIES", default=3)

# --- Rate limits (foundation.ratelimits; counters in the "ratelimit" cache) ------
# Rates are "<count>/<period>" with period s, m, h or d.
RATELIMIT_USE_CACHE = "ratelimit"
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
RATE_LIMITS = {
    # every authenticated API request, per user
    "user": env.str("RATE_LIMIT_USER", default="600/m"),
    # money-moving POSTs (deposits, withdrawals, transfers), per user
    "money": env.str("RATE_LIMIT_MONEY", default="120/m"),
    # outgoing transfers and withdrawals, per source wallet (all its owner's clients together)
    "wallet_outgoing": env.str("RATE_LIMIT_WALLET_OUTGOING", default="60/m"),
    # unauthenticated endpoints (register, token, refresh, logout), per client IP
    "anon": env.str("RATE_LIMIT_ANON", default="30/m"),
    # failed logins per client IP and per username; over budget -> 429 until the window ends
    "login_ip": env.str("RATE_LIMIT_LOGIN_IP", default="20/10m"),
    "login_user": env.str("RATE_LIMIT_LOGIN_USER", default="10/10m"),
}
# When the rate-limit store (Redis) is unreachable: true lets requests through,
# false refuses them with 503 rate_limit_unavailable.
RATE_LIMIT_FAIL_OPEN_READS = env.bool("RATE_LIMIT_FAIL_OPEN_READS", default=True)
RATE_LIMIT_FAIL_OPEN_MONEY = env.bool("RATE_LIMIT_FAIL_OPEN_MONEY", default=False)
# Logins without brute-force counters are refused (503) unless this is true.
RATE_LIMIT_FAIL_OPEN_LOGIN = env.bool("RATE_LIMIT_FAIL_OPEN_LOGIN", default=False)
# Number of trusted proxies in front of the app; the client IP is taken from
# X-Forwarded-For that many hops from the right (0 = use REMOTE_ADDR).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
