#!/bin/sh
# The image's HEALTHCHECK. `errands serve` must answer GET /healthz on the port its command line names (8000 by
# default); the other commands (worker, migrate) are healthy while they run: a worker's health is its heartbeat in
# the database (`errands workers`, errands_workers on /metrics), which a database outage must not turn into a
# restart loop. ERRANDS_HEALTHCHECK_PID names the process to look at (1: tini, whose child is errands).
set -eu

pid="${ERRANDS_HEALTHCHECK_PID:-1}"
serving=false
port=8000
previous=""
# the command line's arguments, one a line (they are NUL-separated in /proc)
for arg in $(tr '\0' '\n' <"/proc/$pid/cmdline"); do
  case "$previous" in
    --port) port="$arg" ;;
  esac
  case "$arg" in
    serve) serving=true ;;
    --port=*) port="${arg#--port=}" ;;
  esac
  previous="$arg"
done

if [ "$serving" = false ]; then
  exit 0
fi
exec python -c '
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=4) as answer:
        sys.exit(0 if answer.status == 200 else f"/healthz answered {answer.status}")
except OSError as exc:
    sys.exit(f"/healthz: {exc}")
' "http://127.0.0.1:${port}/healthz"
