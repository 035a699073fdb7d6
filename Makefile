# Everything a newcomer (and CI) needs: `make demo` and `make test` do all set-up themselves.
PYTHON ?= python3
VENV ?= .venv
OLDEST_VENV ?= .venv-oldest
# The newest Airflow we test, and the oldest 3.x release pyproject.toml declares.
AIRFLOW_LATEST ?= 3.3.2
AIRFLOW_OLDEST ?= 3.0.6
# What Airflow's constraints file for AIRFLOW_OLDEST would hold back: its Task SDK, a FastAPI before
# 0.132 (whose strict Content-Type check rejects the 3.0/3.1.0 Task SDK's bodies with "Remote server
# returned validation error") with a cadwyn that fits it, universal-pathlib 0.2 (0.3 breaks the
# 3.0 ObjectStoragePath) and cryptography 50 (51's Rust MultiFernet refuses the attribute 3.0 sets on
# it, so no connection with a password loads). docs/airflow-versions.md has the details.
OLDEST_PINS ?= "apache-airflow-task-sdk==1.0.6" "fastapi<0.132" "cadwyn<9" "universal-pathlib<0.3" "cryptography<51"
PY = $(VENV)/bin/python
# The 15 slowest tests close every run, so a slow tier (CI has 60 minutes for all three) shows where time goes.
PYTEST_ARGS ?= --durations=15
CHROMIUM ?= /usr/bin/chromium
# With Chromium installed the browser tests must run: a missing piece is then an error, not a skip.
BROWSER_TESTS = $(if $(wildcard $(CHROMIUM)),required,)

.PHONY: install install-oldest lint test test-all test-fast test-oldest test-e2e test-browser screenshots demo airflow bench clean
.PHONY: coverage
.PHONY: docs dist
.PHONY: cluster cluster-stop test-cluster

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q "apache-airflow==$(AIRFLOW_LATEST)" -e ".[test]"
	touch $@

install: $(VENV)/.installed

$(OLDEST_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/pip install -q --upgrade pip
	$(OLDEST_VENV)/bin/pip install -q "apache-airflow==$(AIRFLOW_OLDEST)" $(OLDEST_PINS) -e ".[test]"
	touch $@

install-oldest: $(OLDEST_VENV)/.installed

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) scripts/check_test_sleeps.py

## The README's command, under 10 minutes: lint, the strict docs build, unit, emulator, integration and
## reliability tests in-process, and one end-to-end smoke on real Airflow processes (tests not marked slow).
test: lint docs
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

## Everything `make test` leaves out (marked slow): clusters, soak, the wheel, the browser, the UI plugin
## end to end, benchmark smokes and the rest of end to end. CI runs both (see .ci/run).
test-all: install
	GPTPROTO_CHROMIUM=$(CHROMIUM) GPTPROTO_BROWSER_TESTS=$(BROWSER_TESTS) $(PY) -m pytest -m slow $(PYTEST_ARGS)

## Line coverage of the provider (emulator apart) for `make test`'s tests and for the whole suite,
## subprocesses included -> coverage-test.txt, coverage-all.txt (a few minutes more than the tiers).
coverage: install
	rm -rf .coverage-data && mkdir -p .coverage-data
	COVERAGE_FILE=$(CURDIR)/.coverage-data/test $(PY) -m coverage run -m pytest -m "not slow" -q
	COVERAGE_FILE=$(CURDIR)/.coverage-data/slow GPTPROTO_CHROMIUM=$(CHROMIUM) GPTPROTO_BROWSER_TESTS=$(BROWSER_TESTS) \
		$(PY) -m coverage run -m pytest -m slow -q
	cd .coverage-data && $(CURDIR)/$(PY) -m coverage combine --keep --data-file=test test.* >/dev/null
	cd .coverage-data && $(CURDIR)/$(PY) -m coverage combine --keep --data-file=all test.* slow.* >/dev/null
	$(PY) -m coverage report --data-file=.coverage-data/test | tee coverage-test.txt | tail -1
	$(PY) -m coverage report --data-file=.coverage-data/all | tee coverage-all.txt | tail -1

## The documentation site in site/, strict: a broken link or a missing reference fails the build.
docs: install
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

## sdist and wheel in dist/, checked with twine (install the wheel: see README "Install").
dist: install
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(PY) -m twine check --strict dist/*

## Unit and emulator-backed tests on the oldest supported Airflow, in its own virtualenv.
test-oldest: install-oldest
	$(OLDEST_VENV)/bin/python -m pytest tests/unit tests/emulator tests/integration $(PYTEST_ARGS)

## One command from a fresh clone: venv, install, emulator, connection, run the example DAG, show the MP4.
demo: install
	$(PY) scripts/demo.py

## A local Airflow (standalone) with the example DAGs, the emulator and the connection configured.
airflow: install
	$(PY) scripts/standalone.py

test-fast: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

## Debian's Chromium drives the Airflow UI: connection form, Test button, the video link.
test-browser: install
	GPTPROTO_CHROMIUM=$(CHROMIUM) GPTPROTO_BROWSER_TESTS=required $(PY) -m pytest tests/browser -m browser $(PYTEST_ARGS)

## Refresh the screenshots in docs/images/ (README and docs pages show them).
screenshots: install
	GPTPROTO_CHROMIUM=$(CHROMIUM) GPTPROTO_BROWSER_TESTS=required GPTPROTO_SCREENSHOT_DIR=docs/images \
		$(PY) -m pytest tests/browser -m browser $(PYTEST_ARGS)

## A local distributed Airflow: own Postgres and Redis under .cluster/, CeleryExecutor with two workers,
## two triggerers, the emulator and gptproto_default. Runs in the background; prints the UI URL and login.
cluster: install
	$(PY) scripts/cluster.py start

## Stop everything `make cluster` started, by PID.
cluster-stop:
	$(PY) scripts/cluster.py stop

## Only the cluster tests (tests/cluster, ~10 minutes); `make test` runs them too.
test-cluster: install
	$(PY) -m pytest tests/cluster $(PYTEST_ARGS)

## Real Airflow processes (api-server, scheduler, dag-processor, triggerer) against the emulator.
test-e2e: install
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

## All benchmarks against same-run baselines (about an hour) -> bench/results.md.
bench: install
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) $(OLDEST_VENV) .demo .airflow-home .pytest_cache .mypy_cache .ruff_cache site dist .cluster
