# Two commands for a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export GX_ANALYTICS_ENABLED := False

.PHONY: install demo test test-ops lint bench bench-load bench-backfill bench-backfill-years bench-themes bench-themes-scale bench-scale bench-embed bench-sentiment clean stop-warehouse

install: $(VENV)/.installed

# torch first and exactly 2.13.0: the CPU build on disk; anything else pulls a multi-GB CUDA build.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version'
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

demo: install
	$(BIN)/nps demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/sqlfluff lint dbt_project/models dbt_project/macros --disable-progress-bar
	$(BIN)/lint-imports
	$(BIN)/mypy

# two workers: most of a test's time is dbt, Airflow and PostgreSQL round trips, not Python
test: install lint
	@sh deploy/ensure-chromium.sh
	NPS_BROWSER_REQUIRED=$$(command -v chromium >/dev/null && echo 1 || echo 0) $(BIN)/python -m pytest -q -m "not ops" -n 2 --dist loadgroup

# the production-shaped stack: real scheduler, Celery workers on Redis, Airflow backfills, killed
# workers, concurrent runs, SIGKILLed loads, builds and publishes (about 20 minutes; needs Redis
# on 127.0.0.1:6379 or NPS_CELERY_BROKER_URL)
test-ops: install
	$(BIN)/python -m pytest -q -m ops

# every benchmark (figures in BENCHMARKS.md)
bench: bench-load bench-themes bench-sentiment

# loading throughput: load_entity vs a bare COPY of the same rows (figures in BENCHMARKS.md)
bench-load: install
	$(BIN)/python bench/bench_load.py

$(VENV)/.bench-installed: requirements-bench.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-bench.txt
	@touch $@

# theme engine vs BERTopic defaults on human-labelled sets, nightly stability (about 20 minutes)
bench-themes: $(VENV)/.bench-installed
	$(BIN)/python bench/bench_themes.py

# a demo quarter backfilled through the Airflow stack and through dag.test(), vs full nightly runs
bench-backfill: install
	$(BIN)/python bench/bench_backfill.py --json .bench/backfill/results.json

# three years of the generator's data backfilled a quarter at a time (time per quarter, growth)
bench-backfill-years: install
	$(BIN)/python bench/bench_backfill.py --years 3 --json .bench/backfill/results-3y.json

# the nightly theme step for 10,000 new comments over a 1,000,000-comment history vs a bare encode
bench-themes-scale: install
	$(BIN)/python bench/bench_themes.py --skip-quality --skip-stability --scale

# the whole night at scale, stage by stage, each stage next to its limit: 10,000 new responses over
# 1,000,000 and over 100,000 responses of history (the first run builds the cached base in
# .bench/scale/, about 10 minutes; figures in BENCHMARKS.md)
bench-scale: install
	$(BIN)/python bench/bench_scale.py --history 1000000 --night 10000 --json .bench/scale/results-1000000-10000.json
	$(BIN)/python bench/bench_scale.py --history 100000 --night 10000 --json .bench/scale/results-100000-10000.json

# embedding backends: torch vs ONNX Runtime fp32 / int8, NMI per labelled set and throughput (~20 min first run)
bench-embed: install
	$(BIN)/python bench/bench_embed_backends.py

# sentiment per comment: the classifier and the anchors vs majority class and VADER, on the airline
# tweets' human labels and the demo generator's truth (a few minutes; NPS_BENCH_AIRLINE_CSV)
bench-sentiment: $(VENV)/.bench-installed
	$(BIN)/python bench/bench_sentiment.py

stop-warehouse: install
	$(BIN)/nps warehouse stop

clean:
	rm -rf data dbt_project/target dbt_project/logs expectations/gx/uncommitted .pytest_cache
