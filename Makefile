# NuSec developer entry points. `make demo` and `make test` are the README's two commands;
# both set the machine up first (idempotent), so they work on a fresh clone.
PY      := .venv/bin/python
STAMP   := .venv/.nusec-installed
PYTEST_ARGS ?=

.PHONY: setup native snippets lint typecheck pytest test demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py build.py scripts/bootstrap
	scripts/bootstrap

native: $(STAMP)
	$(PY) build.py

snippets: $(STAMP)
	$(MAKE) -C snippets

lint: $(STAMP)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: $(STAMP)
	.venv/bin/mypy nucore pki ceremony nusec nuboard nusim tests

# pytest exits 5 when it collects nothing; that is a failure here too (an empty suite proves nothing).
pytest: native
	$(PY) -m pytest tests $(PYTEST_ARGS)

test: native lint typecheck pytest

demo: native
	.venv/bin/nusec demo --workdir demo-out

bench: native
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf build nucore/_native*.so nucore/_native.c demo-out
