# The Makefile runs what CI runs. `make run` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
XDIST ?= 4

.PHONY: venv lint test test-fast run clean bench bench-api bench-peers web web-lint web-test docker-smoke

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

lint: venv web-lint
	$(VENV)/bin/ruff check src tests examples
	$(VENV)/bin/ruff format --check src tests examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# the whole suite on SQLite, PostgreSQL and MariaDB (servers that don't answer skip, except under CI)
# (the dashboard is built first: the API's tests serve it, and its own tests run with Vitest)
test: lint web web-test
	$(PY) -m pytest -n $(XDIST) -q --durations=15

# the inner loop: SQLite only, no lint, no slow process tests, stop at the first failure
test-fast: venv
	$(PY) -m pytest -n $(XDIST) -q -x -m "not slow" -k "not postgresql and not mariadb"

run: venv web
	$(PY) examples/demo.py

# The dashboard (web/: React + TypeScript + Vite; Node 20.19+). `npm ci` only when node_modules is missing or
# older than the lock file; the build goes to src/errands/web/static/ (gitignored), which errands serve serves.
WEB_INSTALLED := web/node_modules/.package-lock.json

$(WEB_INSTALLED): web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

web: $(WEB_INSTALLED)
	cd web && npm run build

web-lint: $(WEB_INSTALLED)
	cd web && npx tsc --noEmit && npx eslint --max-warnings 0 .

web-test: $(WEB_INSTALLED)
	cd web && npx vitest run

# errands' own benchmark (benchmarks/README.md): every backend, medians of 3 runs; results in benchmarks/results/
BENCH_ARGS ?=
bench: venv
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

# only the HTTP API's latency per route over 1,000,000 jobs on PostgreSQL (benchmarks/api_bench.py; ~12 min here)
bench-api: venv
	$(PY) benchmarks/bench.py --backends postgresql --only api $(BENCH_ARGS)

# errands beside the peers of the shared peer-bench harness (its venv and results go to PEERBENCH_HOME, not
# into the shared folder), then errands / peer ratios. PEERS, JOBS, WORKERS, RATE, DURATION: see run_all.sh.
PEER_BENCH_DIR ?= $(CURDIR)/../shared/peer-bench
PEERBENCH_HOME ?= /tmp/peer-bench
PEER_ADAPTER := $(CURDIR)/benchmarks/peer_bench_adapter.py
PEERS ?= rq:fork rq:simple celery:prefork dramatiq:redis huey:redis huey:sqlite procrastinate:postgres \
	$(PEER_ADAPTER):postgres $(PEER_ADAPTER):sqlite $(PEER_ADAPTER):mariadb
bench-peers: venv
	@start=$$(date +%s); \
	PEERBENCH_HOME="$(PEERBENCH_HOME)" PEERBENCH_PIP="-e $(CURDIR)" PEERS="$(PEERS)" \
		bash "$(PEER_BENCH_DIR)/run_all.sh" || exit $$?; \
	$(PY) benchmarks/peers.py --latest "$(PEERBENCH_HOME)/results" --since $$start

# the image built and run for real (migrate, serve, a worker, a job) against the compose PostgreSQL, where a Docker
# engine answers; elsewhere it says why it skipped. tests/deploy checks the deployment files offline in `make test`.
docker-smoke:
	sh deploy/docker/smoke.sh

clean:
	rm -rf $(VENV) errands.db errands.db-* logs .pytest_cache .mypy_cache .ruff_cache web/node_modules src/errands/web/static
