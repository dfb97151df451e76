# Two commands do all set-up on a fresh machine: `make run` trains the quickstart recipe,
# `make test` runs the test suite. Both create .venv and install gancore and every plugin.
# `make docs` does the same set-up plus mkdocs, checks that the generated reference pages are
# current (`gancore docs --check`) and builds the documentation site into site/.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PLUGINS := $(wildcard plugins/*/pyproject.toml)
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: install run test docs clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt $(PLUGINS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt torch torchvision
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]" $(foreach p,$(PLUGINS),-e $(dir $(p)))
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/gancore run recipes/quickstart.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/gancore docs --check
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) runs site
