# The README's two commands: `make demo` and `make test`. Each sets itself up in .venv.
# Override the torch requirement for a CUDA build, e.g.
#   make test TORCH="torch==2.11.0 --index-url https://download.pytorch.org/whl/cu130"
PYTHON ?= $(shell command -v python3.11 || command -v python3)
TORCH ?= torch==2.13.0
EXTRAS ?= dev,ros
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cathtrack-installed
NATIVE_SOURCES := CMakeLists.txt pyproject.toml $(shell find src -type f)
CPP_SOURCES = $(shell find src tests/cpp -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.cu' \))
SANITIZE_DIR := build/sanitize

.PHONY: demo test lint format sanitize install clean

demo: $(STAMP)
	$(BIN)/cathtrack demo --out demo_out

test: $(STAMP) lint sanitize
	$(BIN)/python -m pytest -q

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first (pinned: an unpinned torch pulls several GB of CUDA packages), then the build tools,
# then the package itself without build isolation so the extension builds against that torch.
$(STAMP): $(NATIVE_SOURCES) | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet "scikit-build-core>=0.10" "pybind11>=2.12" ninja
	$(BIN)/python -m pip install --quiet --no-build-isolation -e ".[$(EXTRAS)]"
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check python ros tests benchmarks
	$(BIN)/ruff format --check python ros tests benchmarks
	$(BIN)/clang-format --dry-run -Werror $(CPP_SOURCES)

format: $(STAMP)
	$(BIN)/ruff check --fix python ros tests benchmarks
	$(BIN)/ruff format python ros tests benchmarks
	$(BIN)/clang-format -i $(CPP_SOURCES)

# The torch-free core alone, with AddressSanitizer and UBSan, running its C++ test driver.
sanitize: $(STAMP)
	cmake -S . -B $(SANITIZE_DIR) -G Ninja -DCMAKE_MAKE_PROGRAM=$(abspath $(BIN)/ninja) \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCATHTRACK_SANITIZE=ON -DCATHTRACK_CUDA=OFF > /dev/null
	cmake --build $(SANITIZE_DIR) --target postprocess_selftest
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(SANITIZE_DIR)/postprocess_selftest

clean:
	rm -rf build demo_out
