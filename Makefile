# Two commands on a fresh machine (Python 3.11 and Node 20 present):
#   make run    install everything, then run the default profile's pipeline (reports/<profile>/index.html)
#   make test   install everything, then run the whole test suite (CI runs this)
# and one to work in the notebooks:
#   make lab    install everything, then JupyterLab on the notebooks (their parameters cell: profile quick)
PROFILE ?= quick
LAB_PORT ?= 8888
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
NPM_FLAGS := --no-audit --no-fund --loglevel=error

.PHONY: run test lab install install-python install-artillery compile-test-only clean-generated

run: install
	$(PY) run_all.py --profile $(PROFILE)

test: install compile-test-only
	$(PY) -m pytest $(PYTEST_ARGS)

# The venv's JupyterLab and kernel, rooted at notebooks/; kernels over IPC like run_all.py's.
# LAB_ARGS passes more options, e.g. LAB_ARGS=--no-browser on a machine without a display.
lab: install
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks --ServerApp.port=$(LAB_PORT) \
	  --KernelManager.transport=ipc $(LAB_ARGS)

# The Python packages and Artillery install side by side (npm mostly waits on files).
install:
	@$(MAKE) --no-print-directory -j2 --output-sync=target install-python install-artillery

# uv (pinned) installs the same pinned requirements as pip would (7 s from an empty cache here), then
# compileall byte-compiles them on every core, except what only the tests and the AWS commands import
# (AWS CDK's 183 MB of generated Python, sympy, moto, cfn-lint, networkx, mpmath: TEST_ONLY_PACKAGES),
# which `make test` compiles before it runs: 45 s of compiling on 2 cores, 14 of them for aws_cdk alone.
# pip stays in the venv (upgraded, as before: the Lambda bundle runs `python -m pip`); if uv cannot be
# installed or fails, pip installs (and byte-compiles) everything instead.
UV_VERSION := 0.13.9
TEST_ONLY_PACKAGES := aws_cdk|sympy|moto|cfnlint|networkx|mpmath
SITE = $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
install-python: $(VENV)/.installed
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@if $(PY) -m pip install --quiet uv==$(UV_VERSION) && \
	  $(VENV)/bin/uv pip install --quiet --python $(PY) --upgrade-package pip pip -r requirements.txt -e . ; \
	then echo "python packages installed with uv $(UV_VERSION); byte-compiling"; \
	  $(PY) -m compileall -q -j 0 -x '/site-packages/($(TEST_ONLY_PACKAGES))/' "$(SITE)" > /dev/null; \
	else echo "uv failed: installing with pip instead" >&2 && \
	  $(PY) -m pip install --quiet --upgrade pip && $(PY) -m pip install --quiet -r requirements.txt -e . ; fi
	touch $@

# the packages only the tests and the AWS commands import, byte-compiled once (a no-op after pip)
compile-test-only: $(VENV)/.compiled-test-only
$(VENV)/.compiled-test-only: $(VENV)/.installed
	$(PY) -m compileall -q -j 0 $$(for p in $$(echo '$(TEST_ONLY_PACKAGES)' | tr '|' ' '); do \
	  test -d "$(SITE)/$$p" && echo "$(SITE)/$$p"; done) > /dev/null
	touch $@

install-artillery: artillery/node_modules/.installed
# Artillery 2.0.21 exactly (package-lock.json); no browser download (its Playwright engine is unused)
artillery/node_modules/.installed: artillery/package.json artillery/package-lock.json
	cd artillery && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci $(NPM_FLAGS)
	@node -e "const v = require('./artillery/node_modules/artillery/package.json').version; \
	  if (v !== '2.0.21') { console.error('artillery ' + v + ' installed, 2.0.21 expected'); process.exit(1); }"
	touch $@

clean-generated:
	rm -rf data models reports/*/
