"""Settings shared by every environment, one topic per module.

    core           Django itself: secret key, hosts, apps, middleware, templates, auth, static files
    database       PostgreSQL (DATABASE_URL), connection options, the read replica, reconnects
    rest_framework request body limits, REST framework, JWT, the OpenAPI schema
    redis          caches, rate-limit counter store, Celery and its beat schedule
    limits         money rules (currencies, amounts, idempotency, retries) and rate limits
    observability  logging and /metrics (tracing reads the standard OTEL_* variables itself)
    webhooks       webhook endpoints (SSRF rules), signing-secret keys, delivery timeouts and retries

Every value comes from an environment variable with a safe development default, read
through django-environ (`environment.py`); `.env.example` documents each one. The
environment modules (local, test, production) import this one and override what they must.
"""

from .core import *  # noqa: F403
from .database import *  # noqa: F403
from .limits import *  # noqa: F403
from .observability import *  # noqa: F403
from .redis import *  # noqa: F403
from .rest_framework import *  # noqa: F403
from .webhooks import *  # noqa: F403
