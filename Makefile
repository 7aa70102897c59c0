# Two commands do all the set-up on a fresh machine:
#   make demo   # creates/reuses .venv, installs (torch first), runs SASRec on mini Beauty
#   make test   # creates/reuses .venv, installs, runs the test suite
# The paper's results section, one command each (PROFILE=mini|paper, WORKERS=N pass through):
#   make table1 | table2 | table3 | figures | paper
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first, pinned to the local CPU wheel of this machine class (else pip pulls a CUDA build).
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
PROFILE ?= mini
WORKERS ?= 2
TABLE := $(PY) -m harness table --profile $(PROFILE) --workers $(WORKERS)
FIGURE := $(PY) -m harness figure --profile $(PROFILE) --dataset beauty

.PHONY: demo test test-slow bench install clean-artifacts table1 table2 table3 figures paper

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev,distributed,peers]"
	$(PY) -m pip install -q --no-deps recbole==1.2.1   # its ray<=2.6.3 pin would downgrade ray
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m harness run --model sasrec --extractor base --dataset beauty

test: $(STAMP)
	$(PY) -m pytest -q

# End-to-end runs on the real 5-core sets of ../shared/data (minutes); `make test` leaves them out.
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

table1 table3: $(STAMP)
	$(TABLE) $@

table2: $(STAMP)
	$(PY) -m harness table table2 --profile $(PROFILE)

figures: $(STAMP)
	$(TABLE) figure3
	$(TABLE) figure4
	$(FIGURE) gradients
	$(FIGURE) modality-gap

paper: table1 table2 table3 figures

# The benchmarks that need nothing beyond the install (docs/benchmarks.md); RecBole parity and the
# full Beauty 5-core runs are started on their own (benchmarks/recbole_parity.py, beauty_5core.sh).
bench: $(STAMP)
	$(PY) benchmarks/eval_throughput.py
	$(PY) benchmarks/model_speed.py
	$(PY) benchmarks/extract_speed.py

clean-artifacts:
	rm -rf artifacts
