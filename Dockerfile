# syntax=docker/dockerfile:1
# One image for every role of the service; the command picks the role:
#   web     gunicorn -c gunicorn.conf.py wallet_project.wsgi        (the default CMD)
#   worker  celery -A wallet_project worker -l info
#   beat    celery -A wallet_project beat -l info --schedule /tmp/celerybeat-schedule
#   migrate deploy/migrate.sh   (a step of its own before a release; never at web start-up)
# docker-compose.yml wires them together. Secrets come from the environment at run time
# (deploy/env.example); nothing secret is baked into a layer.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: resolve and install the pinned dependencies into a virtualenv ------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements.txt .
# Every pin in requirements.txt ships a manylinux wheel (psycopg[binary] included), so
# this stage needs no compiler either; the runtime stage only copies the result.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install -r requirements.txt

# --- runtime: the interpreter, the virtualenv and the code; no compilers, no pip cache -
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    DJANGO_SETTINGS_MODULE=wallet_project.settings.production
# A fixed numeric uid, so orchestrators can check runAsNonRoot without reading /etc/passwd.
RUN groupadd --system --gid 10001 wallet \
 && useradd --system --uid 10001 --gid wallet --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin wallet
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Owned by root and not writable by the service user: the process cannot change its code.
COPY . .
# Static files (admin, Swagger UI) are collected at build time. The keys are throwaway
# values that only satisfy the production settings' checks; they exist in this RUN's
# environment alone and are never used to sign anything. No database is contacted.
RUN DJANGO_SECRET_KEY=build-only-collectstatic-not-a-secret-0123456789abcdef \
    JWT_SIGNING_KEY=build-only-collectstatic-not-a-secret-fedcba9876543210 \
    DATABASE_URL=postgres://build@localhost:5432/build \
    OTEL_SDK_DISABLED=true \
    python manage.py collectstatic --noinput \
 && python -m compileall -q foundation wallet_project users wallets transfers audit events webhooks corrections dashboard \
 && chmod 0755 deploy/entrypoint.sh deploy/migrate.sh
# Set after the build steps: prometheus_client switches to multiprocess mode as soon as the
# variable exists (even empty), and collectstatic must not leave metric files in a layer.
# Every process of a container writes its metric files here; /metrics adds them up.
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus
USER 10001:10001
EXPOSE 8000
# Liveness of the web role: GET /healthz with a Host from DJANGO_ALLOWED_HOSTS (a bare
# 127.0.0.1 would be refused as a disallowed host). Worker and beat override it.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "deploy/healthcheck.py"]
# The entrypoint execs the command, so gunicorn itself receives SIGTERM: a graceful shutdown,
# where in-flight requests and their money transactions get graceful_timeout to finish.
STOPSIGNAL SIGTERM
ENTRYPOINT ["deploy/entrypoint.sh"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wallet_project.wsgi"]
