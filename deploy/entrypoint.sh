#!/bin/sh
# Entry point of every container of the image (web, worker, beat, migrate).
# It prepares the process and then replaces itself with the command, so the command
# is the one that receives SIGTERM and shuts down gracefully. It never migrates.
set -eu

# prometheus_client keeps one file per process in PROMETHEUS_MULTIPROC_DIR. Files left
# by a previous run of this container would be added to the new counters, so start
# from an empty directory. Each container has its own (a tmpfs in docker-compose.yml):
# pids restart at 1 in every container, so two containers must never share one.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -maxdepth 1 -name '*.db' -delete
fi

exec "$@"
