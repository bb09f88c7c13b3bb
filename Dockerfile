# syntax=docker/dockerfile:1
# One image for the API (gunicorn); DATABASE_URL selects PostgreSQL.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements.txt .
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install -r requirements.txt

FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=wallet_project.settings.production
RUN groupadd --system wallet && useradd --system --gid wallet --home-dir /app --shell /usr/sbin/nologin wallet
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=wallet:wallet . .
# Static files (admin, Swagger UI) are collected at build time with a throwaway key.
RUN DJANGO_SECRET_KEY=build-only JWT_SIGNING_KEY=build-only DATABASE_URL=postgres://build@localhost/build \
    python manage.py collectstatic --noinput --settings=wallet_project.settings.production
USER wallet
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
# Migrations are a separate step: `docker run IMAGE python manage.py migrate`.
CMD ["gunicorn", "wallet_project.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4", "--timeout", "30", "--graceful-timeout", "30"]
