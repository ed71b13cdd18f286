# The README's two commands: `make demo` (the main job on the real scene data) and
# `make test`. Each creates the virtual environment it needs; a stamp file keeps a
# second run from installing anything until a requirements file changes.

PYTHON ?= python3
VENV ?= .venv
SCENES ?= ../shared/datasets/miml-scenes
CLASS_NAMES := desert,mountains,sea,sunset,trees
# A photo from outside the set for the demo's last step (one of the set's where absent).
DEMO_IMAGE ?= $(firstword $(wildcard $(SCENES)/../extra-photos/sunset.jpg) DATASET/images/1201.jpg)

STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python
# Marks a DATASET/images folder that `make demo` copied itself (when it could not link).
COPY_MARK := DATASET/.images-copied-by-make

.PHONY: demo test bench dataset scenes
.NOTPARALLEL:

demo: dataset $(STAMP)
	$(PY) data_generation.py --image_dir DATASET --class_names $(CLASS_NAMES) --split 0.8 --seed 1
	$(PY) retrain.py --image_dir ./DATASET/ --tfhub_module mobilenet_v2_100_224 --num_classes=5
	$(PY) label_image.py --image $(DEMO_IMAGE)

test: $(STAMP)
	$(PY) -m pytest -q tests

# The Performance table of README.md (needs the scene data; about 6 minutes on 2 cores).
bench: $(STAMP)
	$(PY) bench/run_benchmarks.py

$(STAMP): requirements.txt requirements-test.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

# DATASET/ gets a link to the shared images (a copy where links fail) and its own
# labels.json; images are never committed (see .gitignore).
dataset: scenes
	@mkdir -p DATASET
	@if [ -d DATASET/images ] && [ ! -L DATASET/images ] && [ ! -e $(COPY_MARK) ]; then \
	  echo "DATASET/images holds images that make did not put there; move them away first." >&2; \
	  exit 1; \
	fi
	@if [ -L DATASET/images ] || [ ! -e DATASET/images ]; then \
	  rm -f DATASET/images; \
	  ln -s "$(abspath $(SCENES))/images" DATASET/images 2>/dev/null \
	  || { cp -R "$(SCENES)/images" DATASET/images && touch $(COPY_MARK); }; \
	fi
	@rm -f DATASET/labels.json
	cp "$(SCENES)/labels.json" DATASET/labels.json
	@chmod u+w DATASET/labels.json

scenes:
	@if [ ! -d "$(SCENES)/images" ] || [ ! -f "$(SCENES)/labels.json" ]; then \
	  echo "The natural scene data set is not in $(SCENES)" >&2; \
	  echo "(expected $(SCENES)/images/1.jpg ... 2000.jpg and $(SCENES)/labels.json)." >&2; \
	  echo "It is LAMDA's MIML image data (miml-image-data): 2,000 natural scene images with" >&2; \
	  echo "their labels, from the LAMDA group website, Nanjing University" >&2; \
	  echo "(http://www.lamda.nju.edu.cn/data_MIMLimage.ashx). Put the images in" >&2; \
	  echo "$(SCENES)/images/ and the labels in $(SCENES)/labels.json, one JSON list of five" >&2; \
	  echo "flags per line (1 present, -1 absent; desert, mountains, sea, sunset, trees)," >&2; \
	  echo "as README.md explains, or use another folder: make demo SCENES=/path/to/folder" >&2; \
	  exit 1; \
	fi
