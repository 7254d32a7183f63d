#!/bin/sh
# `make docker-smoke`: build the image and run migrate, serve and a worker against the compose PostgreSQL, then
# enqueue a job and wait for a worker to complete it. Where no Docker engine answers (CI, this project's
# machines), it says so and exits 0: the deployment files are checked offline by tests/deploy instead.
set -eu

cd "$(dirname "$0")/../.."
compose_file=deploy/compose.yaml
project="errands-smoke-$$"

if ! command -v docker >/dev/null 2>&1; then
  echo "docker-smoke: skipped: no docker command on this machine"
  exit 0
fi
if ! docker info >/dev/null 2>&1; then
  echo "docker-smoke: skipped: the docker CLI is here but no Docker engine answers (docker info failed)"
  exit 0
fi
if ! docker compose version >/dev/null 2>&1; then
  echo "docker-smoke: skipped: the Docker engine answers but the compose plugin is missing (docker compose)"
  exit 0
fi

# throwaway secrets for a throwaway project
POSTGRES_PASSWORD="smoke$(date +%s)"
ERRANDS_SECRET_KEY="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
ERRANDS_HTTP_PORT="${ERRANDS_HTTP_PORT:-18080}"
export POSTGRES_PASSWORD ERRANDS_SECRET_KEY ERRANDS_HTTP_PORT
dc() { docker compose -p "$project" -f "$compose_file" "$@"; }
cleanup() { dc down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM

echo "docker-smoke: building the image"
dc build migrate
echo "docker-smoke: migrate, then web, a worker and nginx"
dc up -d --wait postgres
dc run --rm migrate
dc up -d --wait web worker nginx

answer() { dc exec -T web python -c "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).status)" "$1"; }
[ "$(answer http://127.0.0.1:8000/healthz)" = 200 ] || { echo "docker-smoke: /healthz failed"; exit 1; }
[ "$(answer http://127.0.0.1:8000/readyz)" = 200 ] || { echo "docker-smoke: /readyz failed"; exit 1; }
curl -fsS "http://127.0.0.1:${ERRANDS_HTTP_PORT}/healthz" >/dev/null || { echo "docker-smoke: nginx does not reach web"; exit 1; }

job=$(dc run --rm -T migrate enqueue examples.jobs:add - --args-json '[2, 3]' | tr -dc '0-9')
echo "docker-smoke: enqueued job $job"
tries=0
until dc run --rm -T migrate jobs show "$job" --json | grep -q '"status": "completed"'; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "docker-smoke: job $job did not complete"; dc logs worker; exit 1
  fi
  sleep 1
done
echo "docker-smoke: job $job completed; stopping (the worker drains on SIGTERM)"
dc stop worker web nginx
echo "docker-smoke: ok"
