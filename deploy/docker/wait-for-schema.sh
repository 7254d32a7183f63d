#!/bin/sh
# An init container's wait (Kubernetes): until the database answers at the schema this image expects, that is
# until the migration Job has run. `errands workers` connects the way serve and worker do, so it fails while the
# database is unreachable or not migrated yet (exit 6, with the reason on stderr, shown here on every try).
# ERRANDS_WAIT_SECONDS bounds the wait (600 by default); past it the pod fails and Kubernetes retries it.
set -u

limit="${ERRANDS_WAIT_SECONDS:-600}"
interval="${ERRANDS_WAIT_INTERVAL:-2}"
started=$(date +%s)
until errands workers --json >/dev/null; do
  waited=$(( $(date +%s) - started ))
  if [ "$waited" -ge "$limit" ]; then
    echo "errands-wait-for-schema: the database is still not ready after ${waited} s" >&2
    exit 1
  fi
  echo "errands-wait-for-schema: waiting for the migrated database (${waited} s so far)" >&2
  sleep "$interval"
done
echo "errands-wait-for-schema: the database is migrated" >&2
