# Two commands do all the set-up on a fresh machine:
#   make demo   # creates/reuses .venv, installs (torch first), runs SASRec on mini Beauty
#   make test   # creates/reuses .venv, installs, runs the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
# torch first, pinned to the local CPU wheel of this machine class (else pip pulls a CUDA build).
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench install clean-artifacts

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

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

clean-artifacts:
	rm -rf artifacts
