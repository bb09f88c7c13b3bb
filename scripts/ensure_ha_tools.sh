#!/usr/bin/env bash
# Installs the Debian packages the high-availability drills need, when they are missing:
# patroni, etcd-server (+ etcd-client for etcdctl) and pgbouncer. Called by `make drills`.
#
# Never fails the build: where it cannot install (no apt-get, not root, no network) it says
# why and exits 0, and the HA drills then skip with the same reason (ops/ha/cluster.py).
set -uo pipefail

missing=()
command -v patroni >/dev/null 2>&1 && command -v patronictl >/dev/null 2>&1 || missing+=(patroni python3-etcd)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
[ "${#missing[@]}" -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_ha_tools: no apt-get; install ${missing[*]} by hand (the HA drills will skip)" >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure_ha_tools: not root; run: sudo apt-get install ${missing[*]} (the HA drills will skip)" >&2
  exit 0
fi
echo "ensure_ha_tools: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The packages' services must not start on the default ports: the drills start their own.
# Docker images already refuse (policy-rc.d exits 101); elsewhere this does it for the run.
policy=/usr/sbin/policy-rc.d
added_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && added_policy=1
fi
status=0
timeout 300 apt-get update -qq >/dev/null 2>&1 || true
timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || status=$?
[ -n "$added_policy" ] && rm -f "$policy"
if [ "$status" -ne 0 ]; then
  echo "ensure_ha_tools: apt-get install ${missing[*]} failed (exit $status); the HA drills will skip" >&2
fi
exit 0
