# shellcheck shell=bash
# Shell shared by tools/gpu_train.sh and tools/gpu_check.sh (sourced, not run): messages, timed
# phases with their logs, the device check and the offline install from this working tree.
#
# The sourcing script sets SCRIPT (its name in messages), REPO (the repository root), PYTHON,
# LOGS (folder of the phase logs), TIMINGS (file of "phase<TAB>seconds" rows), DEVICE (cuda or
# cpu) and CORES; optionally BUILD_DIR (scikit-build-core's build-dir; default: pyproject's) and
# CUDA_ARCHITECTURES (CMAKE_CUDA_ARCHITECTURES; default: the GPU's own with --device cuda).

# limited COMMAND...: runs an external command; a script with a time budget redefines it to stop
# the command when the budget runs out (tools/gpu_check.sh).
limited() { "$@"; }

die() {
  echo "$SCRIPT: $*" >&2
  exit 1
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }
elapsed() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

# run_phase NAME COMMAND...: runs the command with its output in $LOGS/NAME.log, adds its time to
# $TIMINGS, prints one line; returns the command's exit status.
run_phase() {
  local name=$1 start status took
  shift
  echo "[$(date +%H:%M:%S)] $name: $*"
  start=$(now_ms)
  status=0
  "$@" > "$LOGS/$name.log" 2>&1 || status=$?
  took=$(($(now_ms) - start))
  printf '%s\t%s\n' "$name" "$(elapsed "$took")" >> "$TIMINGS"
  if [ "$status" -eq 0 ]; then
    echo "    done in $(elapsed "$took") s (log: logs/$name.log)"
  else
    echo "    exit $status after $(elapsed "$took") s (log: logs/$name.log)"
  fi
  return "$status"
}

# phase NAME COMMAND...: run_phase, and on failure the log's end and a stop.
phase() {
  local name=$1 status=0
  run_phase "$@" || status=$?
  if [ "$status" -ne 0 ]; then
    tail -n 25 "$LOGS/$name.log" >&2
    die "$name failed (exit $status); full log: $LOGS/$name.log"
  fi
}

# resolve_python: $PYTHON (default python from PATH) as an absolute path, or a stop in one line.
resolve_python() {
  PYTHON=${PYTHON:-python}
  command -v "$PYTHON" > /dev/null || die "no $PYTHON on PATH (set PYTHON=/path/to/python)"
  [[ $PYTHON != */* || $PYTHON == /* ]] || PYTHON=$PWD/$PYTHON
}

# check_device: torch imports and, with DEVICE=cuda, sees a GPU; otherwise a stop in one line
# before anything is built or rendered. Writes $LOGS/device.log.
check_device() {
  "$PYTHON" - "$DEVICE" > "$LOGS/device.log" 2>&1 <<'EOF' || die "$(tail -n 1 "$LOGS/device.log")"
import sys

try:
    import torch
except ImportError as error:
    sys.exit(f"torch cannot be imported with {sys.executable}: {error}")
if sys.argv[1] == "cuda":
    if not torch.cuda.is_available():
        sys.exit(
            f"--device cuda, but torch {torch.__version__} (CUDA build {torch.version.cuda}) "
            "sees no CUDA GPU; use --device cpu for a dry run"
        )
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
else:
    print(f"torch {torch.__version__}, CPU, {torch.get_num_threads()} threads")
EOF
  echo "$SCRIPT: $(tail -n 1 "$LOGS/device.log") (python: $(command -v "$PYTHON"))"
}

# gpu_architecture: the first GPU's compute capability as CMake writes it (e.g. 90), or nothing.
gpu_architecture() {
  command -v nvidia-smi > /dev/null || return 0
  local arch
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2> /dev/null | head -n 1 | tr -d ' .')
  [[ $arch =~ ^[0-9]+$ ]] && echo "$arch"
  return 0
}

# The CUDA architectures to compile for: CUDA_ARCHITECTURES if set, else with --device cuda the
# GPU's own (the default list has five), else nothing (the project's default list).
cuda_architectures() {
  if [ -n "${CUDA_ARCHITECTURES:-}" ]; then
    echo "$CUDA_ARCHITECTURES"
  elif [ "$DEVICE" = cuda ]; then
    gpu_architecture
  fi
}

install_dependencies() {
  # Distributions the package needs that this Python lacks: from wheelhouse/ without an index.
  local missing
  missing=$("$PYTHON" - "$REPO/wheelhouse/requirements.txt" <<'EOF'
import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# Build requirements and runtime dependencies of pyproject.toml (as `make wheelhouse` lists them),
# less the ones the machine is expected to bring (torch, numpy, OpenCV, safetensors).
names = ["scikit-build-core", "pybind11", "ninja", "PyYAML", "tqdm", "matplotlib", "pycocotools",
         "pydicom", "h5py", "tensorboard", "scipy"]
listed = Path(sys.argv[1])
if listed.is_file():
    names = [re.split(r"[<>=!~ \[;]", line.strip())[0] for line in listed.read_text().splitlines()]
    names = [name for name in names if name]
missing = []
for name in names:
    try:
        version(name)
    except PackageNotFoundError:
        missing.append(name)
print(" ".join(missing))
EOF
  )
  if [ -z "$missing" ]; then
    echo "every dependency is installed"
    return 0
  fi
  # Without these three the recipes still run (DICOM input, UCL HDF5 and the TensorBoard mirror
  # of the CSV logs are not used), so a wheelhouse may leave them out; anything else is needed.
  local required optional
  required=$(echo " $missing " | sed 's/ pydicom / /; s/ h5py / /; s/ tensorboard / /' | xargs)
  optional=$(for name in $missing; do [[ " $required " == *" $name "* ]] || echo "$name"; done | xargs)
  if [ -n "$required" ]; then
    if [ ! -d "$REPO/wheelhouse" ]; then
      echo "missing $required and no wheelhouse/ (run make wheelhouse where there is internet)" >&2
      return 1
    fi
    echo "installing from wheelhouse/: $required"
    # shellcheck disable=SC2086
    limited "$PYTHON" -m pip install --no-cache-dir --no-index --find-links "$REPO/wheelhouse" $required || return 1
  fi
  if [ -n "$optional" ]; then
    # shellcheck disable=SC2086
    if [ -d "$REPO/wheelhouse" ] && limited "$PYTHON" -m pip install --no-cache-dir --no-index \
      --find-links "$REPO/wheelhouse" $optional; then
      echo "installed from wheelhouse/: $optional"
    else
      echo "warning: $optional not installed; the recipe runs without them" >&2
    fi
  fi
}

install_package() {
  local settings=() arch
  arch=$(cuda_architectures)
  [ -z "$arch" ] || settings+=("--config-settings=cmake.define.CMAKE_CUDA_ARCHITECTURES=$arch")
  [ -z "${BUILD_DIR:-}" ] || settings+=("--config-settings=build-dir=$BUILD_DIR")
  command -v cmake > /dev/null && cmake --version | head -n 1 || echo "warning: no cmake on PATH" >&2
  command -v nvcc > /dev/null && nvcc --version | tail -n 1 || echo "nvcc: not on PATH"
  CMAKE_BUILD_PARALLEL_LEVEL=$CORES limited "$PYTHON" -m pip install -v --no-cache-dir --no-index \
    --no-build-isolation --no-deps ${settings[@]+"${settings[@]}"} -e "$REPO" || return 1
  "$PYTHON" -c "import cathtrack, cathtrack._native; print('cathtrack', cathtrack.__file__)"
}
