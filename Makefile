# `make demo` and `make test` each create .venv on first use and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-abrlab

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,plot,dask,drm]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/abrlab demo

test: $(STAMP)
	@command -v tmux >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && apt-get install -y -qq tmux) >/dev/null 2>&1) || echo "note: tmux not installed; dashboard tests will skip"
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/abrlab bench --json

clean:
	rm -rf $(VENV) build *.egg-info
