# Two entry points: `make demo` and `make test`. Each creates or refreshes .venv itself.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned in the same call so that pip takes the local CPU build, not a CUDA one.
	$(PY) -m pip install -q torch==2.13.0 -e ".[dev,sweep]"
	# References our code is compared against in tests, without their unneeded requirements: torchattacks (PGD;
	# asks for torchvision) and neuralpredictors (Gaussian2d readout; its other requirements are installed above).
	$(PY) -m pip install -q --no-deps torchattacks==3.5.1 neuralpredictors==0.3.0
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/brainalign demo

test: $(STAMP)
	@# The report's browser test needs Debian's chromium; install it where missing (as root).
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
		echo "warning: chromium is not installed; the report's browser test will be skipped"
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/pytest -q
	@# The training tests again on torch's portable kernel: their thresholds must hold on any CPU, not only on
	@# this one's (AVX-512 here, AVX2 or plain elsewhere). tests/conftest.py marks them `trains`.
	ATEN_CPU_CAPABILITY=default $(VENV)/bin/pytest -q -m "trains and not slow"

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
