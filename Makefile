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
SANITIZE_DIR := build/sanitize-cpp
# How long `make sanitize` runs the core's fuzz driver (CI: `make test`, the default).
FUZZ_SECONDS ?= 60

.PHONY: demo test lint format sanitize install clean wheelhouse

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

# The torch-free core alone, with AddressSanitizer and UBSan, running its C++ test driver, then
# its seeded fuzz driver for FUZZ_SECONDS (tests/cpp/CMakeLists.txt builds both).
sanitize: $(STAMP)
	cmake -S tests/cpp -B $(SANITIZE_DIR) -G Ninja -DCMAKE_MAKE_PROGRAM=$(abspath $(BIN)/ninja) \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCATHTRACK_SANITIZE=ON -DCATHTRACK_CUDA=OFF > /dev/null
	cmake --build $(SANITIZE_DIR) --target postprocess_selftest postprocess_fuzz
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(SANITIZE_DIR)/cathtrack/postprocess_selftest
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(SANITIZE_DIR)/postprocess_fuzz --seconds $(FUZZ_SECONDS)

# Wheels for installing on a machine without internet that already has torch, numpy, OpenCV and
# safetensors (tools/gpu_train.sh installs from wheelhouse/ with --no-index when it exists): the
# build requirements and runtime dependencies of pyproject.toml, with their own dependencies, as
# binary wheels for CPython 3.10-3.12 on manylinux x86_64 up to glibc 2.28 (pip does not widen one
# --platform to the older manylinux tags itself, so each is named). The packages the target machine
# brings are left out. pip evaluates dependency markers for the Python running it, not the target's,
# so the backports scikit-build-core needs on 3.10 (tomli, exceptiongroup) are named explicitly.
WHEELHOUSE := wheelhouse
WHEELHOUSE_PYTHONS := 3.10 3.11 3.12
WHEELHOUSE_EXTRA := ninja tomli exceptiongroup
WHEELHOUSE_EXCLUDE := torch numpy opencv-python opencv-python-headless safetensors
WHEELHOUSE_PLATFORMS := manylinux1 manylinux2010 manylinux2014 \
  $(foreach glibc,5 12 17 18 19 20 21 22 23 24 25 26 27 28,manylinux_2_$(glibc))
wheelhouse: | $(BIN)/python
	mkdir -p $(WHEELHOUSE)
	$(BIN)/python -c 'import re, sys, tomllib; p = tomllib.load(open("pyproject.toml", "rb")); \
	  skip = set(sys.argv[2:]); reqs = p["build-system"]["requires"] + p["project"]["dependencies"] + sys.argv[1].split(); \
	  print("\n".join(r for r in reqs if re.split(r"[<>=!~ \[;]", r)[0].lower() not in skip))' \
	  "$(WHEELHOUSE_EXTRA)" $(WHEELHOUSE_EXCLUDE) > $(WHEELHOUSE)/requirements.txt
	for version in $(WHEELHOUSE_PYTHONS); do \
	  $(BIN)/python -m pip download --quiet --dest $(WHEELHOUSE) --only-binary=:all: \
	    --python-version $$version --implementation cp \
	    $(foreach platform,$(WHEELHOUSE_PLATFORMS),--platform $(platform)_x86_64) \
	    -r $(WHEELHOUSE)/requirements.txt || exit 1; \
	done
	cd $(WHEELHOUSE) && rm -f torch-*.whl numpy-*.whl nvidia_*.whl opencv_*.whl safetensors-*.whl triton-*.whl
	@echo "$(WHEELHOUSE)/: $$(ls $(WHEELHOUSE)/*.whl | wc -l) wheels, $$(du -sh $(WHEELHOUSE) | cut -f1)"

clean:
	rm -rf build demo_out
