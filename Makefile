# `make demo` and `make test` each create .venv on first use and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-abrlab

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,plot,dask,drm,encode]'
	# bytecode, as pip writes it for an installed package (an editable install has none, and
	# with PYTHONDONTWRITEBYTECODE set every command would compile ~80 modules: ~0.1 s)
	$(BIN)/python -m compileall -q abr netem player
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

# `make interop`: what `abrlab interop dashjs` and the `browser` tests need, outside the
# repository: Debian's chromium (apt-get, when missing), the dashjs npm package 5.x and the
# Python playwright driver (never `playwright install`: it uses /usr/bin/chromium) in .interop/.
# Idempotent: each step runs only when its piece is missing.
INTEROP := .interop
PLAYWRIGHT_PIN := playwright==1.65.2

.PHONY: interop
interop: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	@grep -qs '"version": "5\.' $(INTEROP)/node_modules/dashjs/package.json || \
		(mkdir -p $(INTEROP) && npm install --prefix $(INTEROP) --no-audit --no-fund --silent 'dashjs@5')
	@test -d $(INTEROP)/python/playwright || \
		$(BIN)/python -m pip install --quiet --target $(INTEROP)/python '$(PLAYWRIGHT_PIN)'
	@$(BIN)/abrlab interop check
