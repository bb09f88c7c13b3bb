#!/usr/bin/env bash
# Run a command; fail if it wrote anything to stderr, even when it exits 0.
#
#   scripts/fail_on_stderr.sh .venv/bin/bandit -c bandit.yaml -r . -q
#
# For bandit: a malformed `# nosec`, a `# nosec BXXX` on a line BXXX does not flag, or an
# unknown test id is only a WARNING on stderr and bandit still exits 0; it has no flag
# that makes warnings fatal. A clean `make test` prints no warnings, so this makes one fail.
# The command's stdout is passed through as it comes, its stderr once it has finished.
set -uo pipefail
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
errors="$(mktemp)"
trap 'rm -f "$errors"' EXIT
"$@" 2>"$errors"
status=$?
if [ -s "$errors" ]; then
  cat "$errors" >&2
  echo "$(basename "$0"): $1 wrote the above to stderr; treated as a failure" >&2
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
