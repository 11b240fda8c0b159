# Two commands, each working on a fresh clone: `make test` and `make reproduce`.
PYTHON ?= python3
VENV   ?= .venv
# A CPU build of torch that lies on this project's machines' disk; a GPU user can
# override it, e.g. `make reproduce TORCH=torch`.
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin

# Data root: ../shared/data beside the checkout when present, else the download cache.
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)/mnist),)
export EARLYFUSION_DATA ?= $(SHARED_DATA)
endif

.PHONY: install test reproduce bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e '.[test]'
	touch $@

test: install
	$(BIN)/python -m pytest -q

reproduce: install
	$(BIN)/earlyfusion reproduce --profile quick --jobs 2

bench: install
	$(BIN)/earlyfusion bench

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
