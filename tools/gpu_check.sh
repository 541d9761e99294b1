#!/usr/bin/env bash
# The CUDA path checked in one call on a fresh GPU machine, from a copied working tree:
#
#   bash tools/gpu_check.sh OUT_DIR [options]          (or OUT=... bash tools/gpu_check.sh)
#
# 1. install        the package from this working tree, offline (tools/gpu_common.sh: missing
#                   dependencies from wheelhouse/, then an editable build with nvcc for this GPU)
# 2. build-info     cathtrack.build_info(): CUDA kernels and CUDA engine compiled in, GPU seen
# 3. pytest-cuda    pytest -m cuda over the test files that have such tests
# 4. cuda-parity    tests/cpp/cuda_parity: CUDA post-processing equal to the CPU core bit for bit
# 5. eval           cathtrack eval on --frames clinical frames (seed 1000), on the CPU and on the
#                   device; eval-compare checks every metric against the CPU's within the tolerance
# 6. engine-parity  the native engine (.pt2) against the Python reference on the device
# 7. bench          cathtrack bench --device cuda --half (and an onnxruntime row where onnxruntime
#                   has a CUDA provider)
#
# Every log goes to OUT/logs, every JSON to OUT; a summary table ends the run (OUT/summary.md,
# OUT/summary.json). The run keeps to --minutes (default 8): a command still running at the end
# of the budget is stopped, and checks that would start after it are reported as not run.
# --device cpu is the dry run: everything above on the CPU, the GPU-only parts reported as
# skipped. Exit status 0 when no check failed. See docs/cuda.md.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bash tools/gpu_check.sh [OUT_DIR] [options]

  OUT_DIR               where every log and JSON goes (default: $OUT)
  --device cuda|cpu     (default cuda; cpu for the dry run)
  --model PATH          checkpoint to evaluate and time (default models/cathtrack_resnet34.safetensors)
  --frames N            clinical frames for cathtrack eval (default 200)
  --parity-frames N     frames of the engine parity check (default 50)
  --bench-frames N      timed frames of cathtrack bench (default 200)
  --size S              frame side in pixels (default 256)
  --minutes M           time budget of the whole run, install included (default 8)
  --cuda-arch LIST      CMAKE_CUDA_ARCHITECTURES of the builds, e.g. 90 (default: the GPU's own;
                        with --device cpu the project's list)
  --only LIST           run only these checks (comma-separated names of the summary's rows,
                        e.g. cuda-parity,engine-parity for a second run after a fix)
  --keep-data           keep the rendered frames (OUT/data; removed at the end otherwise)

environment: PYTHON (default: python from PATH), CATHTRACK_SKIP_INSTALL=1 (no install step)
EOF
}

SCRIPT=gpu_check
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tools/gpu_common.sh
source "$REPO/tools/gpu_common.sh"
STARTED=$(now_ms)

# Largest difference allowed between the CPU's and the device's eval figures (docs/cuda.md):
# metrics in [0, 1] and the localisation error in pixels. The forward-pass FPS is not compared.
EVAL_TOLERANCE=0.01
EVAL_MAE_TOLERANCE_PX=0.05

OUT_DIR=${OUT:-}
DEVICE=cuda
MODEL=
FRAMES=200
PARITY_FRAMES=50
BENCH_FRAMES=200
SIZE=256
MINUTES=8
CUDA_ARCHITECTURES=
ONLY=
KEEP_DATA=0
CHECK_NAMES="build-info pytest-cuda cuda-parity data eval-cpu eval-device eval-compare engine-parity bench"
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --device) DEVICE=${2:?--device needs a value}; shift 2 ;;
    --model) MODEL=${2:?--model needs a value}; shift 2 ;;
    --frames) FRAMES=${2:?--frames needs a value}; shift 2 ;;
    --parity-frames) PARITY_FRAMES=${2:?--parity-frames needs a value}; shift 2 ;;
    --bench-frames) BENCH_FRAMES=${2:?--bench-frames needs a value}; shift 2 ;;
    --size) SIZE=${2:?--size needs a value}; shift 2 ;;
    --minutes) MINUTES=${2:?--minutes needs a value}; shift 2 ;;
    --cuda-arch) CUDA_ARCHITECTURES=${2:?--cuda-arch needs a value}; shift 2 ;;
    --only) ONLY=${2:?--only needs a value}; shift 2 ;;
    --keep-data) KEEP_DATA=1; shift ;;
    -*) usage >&2; die "unknown option $1" ;;
    *) OUT_DIR=$1; shift ;;
  esac
done
[ -n "$OUT_DIR" ] || { usage >&2; die "give OUT_DIR (or set \$OUT)"; }
case "$DEVICE" in cuda | cpu) ;; *) die "--device must be cuda or cpu, got $DEVICE" ;; esac
for name in FRAMES PARITY_FRAMES BENCH_FRAMES SIZE; do
  option=${name,,}
  [[ ${!name} =~ ^[0-9]+$ ]] && [ "${!name}" -gt 0 ] || die "--${option//_/-} must be a positive integer, got ${!name}"
done
[ "$SIZE" -ge 32 ] || die "--size must be >= 32, got $SIZE"
[[ $MINUTES =~ ^[0-9]*\.?[0-9]+$ ]] || die "--minutes must be a positive number, got $MINUTES"
for name in ${ONLY//,/ }; do
  [[ " $CHECK_NAMES " == *" $name "* ]] || die "--only: no check named $name (checks: ${CHECK_NAMES// /, })"
done
[[ -z $CUDA_ARCHITECTURES || $CUDA_ARCHITECTURES =~ ^[0-9a-z\;-]+$ ]] \
  || die "--cuda-arch must be a CMake architecture list such as 90 or 80;90, got $CUDA_ARCHITECTURES"

resolve_python
if [ -z "$MODEL" ]; then
  MODEL=$REPO/models/cathtrack_resnet34.safetensors # the shipped ResNet34
elif [[ $MODEL != /* ]]; then
  MODEL=$PWD/$MODEL # relative to the caller's directory, as OUT_DIR
fi
[ -f "$MODEL" ] || die "no model file $MODEL"
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
cd "$REPO"
LOGS=$OUT_DIR/logs
DATA=$OUT_DIR/data/clinical
mkdir -p "$LOGS"
# Caches inside OUT, nothing written elsewhere (the export cache: unless the caller chose one).
export MPLCONFIGDIR=$OUT_DIR/.cache/matplotlib
export CATHTRACK_CACHE=${CATHTRACK_CACHE:-$OUT_DIR/.cache/cathtrack}
export MPLBACKEND=Agg PYTHONUNBUFFERED=1
CORES=$(nproc)
TIMINGS=$OUT_DIR/timings.tsv
CHECKS=$OUT_DIR/checks.tsv
: > "$TIMINGS"
: > "$CHECKS"
# The builds of this script have their own folders, apart from a development build.
BUILD_DIR="build/gpu-check/{wheel_tag}" # scikit-build-core fills in {wheel_tag}
PARITY_ARCH=$(cuda_architectures)
PARITY_BUILD=$REPO/build/gpu-check/cpp${PARITY_ARCH:+-${PARITY_ARCH//;/_}}

# The budget: every command stops at DEADLINE; the summary has the last 15 s.
BUDGET_MS=$(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60000 }')
DEADLINE=$((STARTED + BUDGET_MS - 15000))
remaining_s() { echo $(((DEADLINE - $(now_ms)) / 1000)); }
# limited COMMAND...: the command, stopped when the budget runs out (exit 124).
limited() {
  local left
  left=$(remaining_s)
  [ "$left" -gt 0 ] || return 124
  timeout --kill-after=5 "$left" "$@"
}

# check NAME COMMAND...: one row of the summary. Exit 0 pass, 77 skip (cannot run here), 124 or
# 137 timeout (the budget ran out), anything else fail; not-run when the budget is already spent
# or a check it needs did not pass (REQUIRES: names of checks, set for one call). With --only,
# the checks not named are left out.
check() {
  local name=$1 status=0 start result needed
  shift
  [[ -z $ONLY || ",$ONLY," == *",$name,"* ]] || return 0
  for needed in ${REQUIRES:-}; do
    if [ "$(check_status "$needed")" != pass ]; then
      echo "[$(date +%H:%M:%S)] $name: not run ($needed did not pass)"
      printf '%s\tnot-run\t0\n' "$name" >> "$CHECKS"
      return 0
    fi
  done
  if [ "$(remaining_s)" -le 0 ]; then
    echo "[$(date +%H:%M:%S)] $name: not run (the budget is spent)"
    printf '%s\tnot-run\t0\n' "$name" >> "$CHECKS"
    return 0
  fi
  start=$(now_ms)
  run_phase "$name" "$@" || status=$?
  case $status in
    0) result=pass ;;
    77) result=skip ;;
    124 | 137) result=timeout ;;
    *) result=fail ;;
  esac
  printf '%s\t%s\t%s\n' "$name" "$result" "$(elapsed $(($(now_ms) - start)))" >> "$CHECKS"
}
check_status() { awk -F'\t' -v name="$1" '$1 == name { status = $2 } END { print status }' "$CHECKS"; }

echo "gpu_check: repository $REPO, output $OUT_DIR"
echo "gpu_check: device $DEVICE, model $MODEL, $FRAMES eval frames at ${SIZE}px, $MINUTES min budget, $CORES cores"

# ---- device: fail early, in one line --------------------------------------------------------------
check_device

# ---- 1. install -----------------------------------------------------------------------------------
if [ "${CATHTRACK_SKIP_INSTALL:-0}" = 1 ]; then
  echo "[$(date +%H:%M:%S)] install: skipped (CATHTRACK_SKIP_INSTALL=1)"
else
  phase install-dependencies install_dependencies
  phase install-package install_package
fi

# ---- 2. what was compiled in ----------------------------------------------------------------------
build_info() {
  limited "$PYTHON" - "$DEVICE" "$OUT_DIR/build_info.json" <<'EOF'
import json
import sys
from pathlib import Path

import torch

import cathtrack

device, path = sys.argv[1], Path(sys.argv[2])
info = cathtrack.build_info()
info["torch_cuda"] = torch.version.cuda
info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
path.write_text(json.dumps(info, indent=2))
print(json.dumps(info, indent=2))
if device == "cuda":
    wanted = ("cuda_kernels", "cuda_engine", "cuda_available")
    missing = [key for key in wanted if not info[key]]
    if missing:
        sys.exit(f"false: {', '.join(missing)} (a CUDA torch and nvcc at build time are needed)")
EOF
}
check build-info build_info

# ---- 3. pytest -m cuda ----------------------------------------------------------------------------
pytest_cuda() {
  # Only the files that have CUDA tests: the others may import what this machine lacks (ROS).
  local files
  mapfile -t files < <(grep -l "mark.cuda" tests/test_*.py)
  [ "${#files[@]}" -gt 0 ] || { echo "no test is marked cuda"; return 1; }
  "$PYTHON" -c "import pytest, skimage" || { echo "pytest and scikit-image are needed (wheelhouse/)"; return 1; }
  local status=0
  limited "$PYTHON" -m pytest -m cuda -q -rs -o "cache_dir=$OUT_DIR/.cache/pytest" \
    --junitxml "$OUT_DIR/pytest_cuda.xml" "${files[@]}" || status=$?
  [ "$status" -eq 0 ] || return "$status"
  # Skipped means no GPU: fine for the dry run, a failure on the GPU.
  if grep -q '<skipped' "$OUT_DIR/pytest_cuda.xml"; then
    [ "$DEVICE" = cpu ] && return 77
    echo "CUDA tests were skipped on a GPU machine"
    return 1
  fi
}
check pytest-cuda pytest_cuda

# ---- 4. cuda_parity -------------------------------------------------------------------------------
cuda_parity() {
  local generator=() ninja arch status=0
  ninja=$(dirname "$PYTHON")/ninja
  [ -x "$ninja" ] || ninja=$(command -v ninja || true)
  [ -z "$ninja" ] || generator=(-G Ninja "-DCMAKE_MAKE_PROGRAM=$ninja")
  arch=$(cuda_architectures)
  [ -z "$arch" ] || generator+=("-DCMAKE_CUDA_ARCHITECTURES=$arch")
  limited cmake -S tests/cpp -B "$PARITY_BUILD" -DCMAKE_BUILD_TYPE=Release "${generator[@]}" || return $?
  if ! grep -q '^CMAKE_CUDA_COMPILER:[A-Z]*=/' "$PARITY_BUILD/CMakeCache.txt"; then
    echo "no nvcc: the CUDA kernels are not built"
    [ "$DEVICE" = cpu ] && return 77
    return 1
  fi
  limited cmake --build "$PARITY_BUILD" --target cuda_parity --parallel "$CORES" || return $?
  limited "$PARITY_BUILD/cathtrack/cuda_parity" || status=$?
  # 77: no CUDA device (the driver ran nothing): fine for the dry run only.
  [ "$status" -eq 77 ] && [ "$DEVICE" = cuda ] && return 1
  return "$status"
}
check cuda-parity cuda_parity

# ---- 5. evaluation on the CPU and on the device ---------------------------------------------------
check data limited "$PYTHON" -m cathtrack.cli synth --out "$DATA" --n "$FRAMES" --size "$SIZE" \
  --preset clinical --seed 1000 --backgrounds data/angiograms/training --workers "$CORES" --overwrite
REQUIRES=data check eval-cpu limited "$PYTHON" -m cathtrack.cli eval "$MODEL" "$DATA" \
  --device cpu --json "$OUT_DIR/eval_cpu.json"
REQUIRES=data check eval-device limited "$PYTHON" -m cathtrack.cli eval "$MODEL" "$DATA" \
  --device "$DEVICE" --json "$OUT_DIR/eval_device.json"

eval_compare() {
  limited "$PYTHON" - "$OUT_DIR" "$EVAL_TOLERANCE" "$EVAL_MAE_TOLERANCE_PX" <<'EOF'
import json
import sys
from pathlib import Path

out, tolerance, mae_tolerance = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
cpu = json.loads((out / "eval_cpu.json").read_text())
device = json.loads((out / "eval_device.json").read_text())
KEYS = ("ap", "ap50", "point_ap", "point_ap_2px", "box8_ap", "box8_ap50", "precision_2px",
        "recall_2px", "f1_2px", "mae_px", "mean_j", "dice", "type_accuracy",
        "catheter_count_accuracy")
rows, ok = {}, cpu["frames"] == device["frames"]
for key in KEYS:
    a, b = cpu.get(key), device.get(key)
    limit = mae_tolerance if key == "mae_px" else tolerance
    if a is None or b is None:  # n/a on both sides (e.g. no typed catheter) is agreement
        same = a is None and b is None
        rows[key] = {"cpu": a, "device": b, "difference": None, "tolerance": limit, "ok": same}
    else:
        difference = abs(a - b)
        rows[key] = {"cpu": a, "device": b, "difference": difference, "tolerance": limit,
                     "ok": difference <= limit}
    ok = ok and rows[key]["ok"]
report = {"device": device["device"], "frames": device["frames"], "metrics": rows, "ok": ok}
(out / "eval_compare.json").write_text(json.dumps(report, indent=2))
print(f"{'metric':<26}{'cpu':>10}{device['device']:>10}{'|diff|':>10}{'limit':>8}")
for key, row in rows.items():
    cells = [f"{v:>10.4f}" if isinstance(v, float) else f"{'n/a':>10}"
             for v in (row["cpu"], row["device"], row["difference"])]
    print(f"{key:<26}{''.join(cells)}{row['tolerance']:>8.2f}{'' if row['ok'] else '  OUT'}")
sys.exit(0 if ok else f"{device['device']} differs from the CPU beyond the tolerance")
EOF
}
REQUIRES="eval-cpu eval-device" check eval-compare eval_compare

# ---- 6. the native engine against the Python reference on the device ------------------------------
engine_parity() {
  limited "$PYTHON" - "$MODEL" "$DATA" "$DEVICE" "$PARITY_FRAMES" "$OUT_DIR/engine_parity.json" <<'EOF'
import json
import sys
from pathlib import Path

import numpy as np

from cathtrack.data.readers import open_reader
from cathtrack.tracker import Tracker

model, data, device, count, path = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5])
# Tolerances (docs/cuda.md): the .pt2's kernels are not eager torch's, so a peak or a mask pixel
# right at a threshold may flip; the rest must agree.
MATCH_PX, MIN_MATCHED, MIN_MASK_IOU, MAX_MEDIAN_PX = 0.5, 0.99, 0.99, 0.05
reader = open_reader(Path(data))
frames = [reader[i].image for i in range(min(count, len(reader)))]
reference = Tracker(model, device=device, backend="python")
print(f"exporting/loading the .pt2 for {device}", flush=True)
native = Tracker(model, device=device, backend="native", export_format="pt2")
matched_reference = matched_native = total_reference = total_native = 0
distances, score_differences, ious, same_catheters = [], [], [], 0
for frame in frames:
    a, b = reference(frame), native(frame)
    total_reference += len(a.electrodes)
    total_native += len(b.electrodes)
    if len(a.electrodes) and len(b.electrodes):
        d = np.linalg.norm(a.electrodes[:, None, :] - b.electrodes[None, :, :], axis=2)
        nearest = d.argmin(axis=1)
        close = d[np.arange(len(a.electrodes)), nearest] <= MATCH_PX
        matched_reference += int(close.sum())
        matched_native += int((d.min(axis=0) <= MATCH_PX).sum())
        distances += d[np.arange(len(a.electrodes)), nearest][close].tolist()
        score_differences += np.abs(a.scores[close] - b.scores[nearest[close]]).tolist()
    union = np.logical_or(a.binary, b.binary).sum()
    ious.append(1.0 if union == 0 else float(np.logical_and(a.binary, b.binary).sum() / union))
    same_catheters += len(a.catheters) == len(b.catheters)


def share(matched: int, total: int) -> float:
    return 1.0 if total == 0 else matched / total


report = {
    "device": device,
    "frames": len(frames),
    "electrodes_reference": total_reference,
    "electrodes_native": total_native,
    "matched_reference": share(matched_reference, total_reference),
    "matched_native": share(matched_native, total_native),
    "median_distance_px": float(np.median(distances)) if distances else 0.0,
    "max_distance_px": float(np.max(distances)) if distances else 0.0,
    "max_score_difference": float(np.max(score_differences)) if score_differences else 0.0,
    "mask_iou_mean": float(np.mean(ious)),
    "mask_iou_min": float(np.min(ious)),
    "same_catheter_count": share(same_catheters, len(frames)),
    "tolerance": {"match_px": MATCH_PX, "min_matched": MIN_MATCHED, "min_mask_iou_mean": MIN_MASK_IOU,
                  "max_median_distance_px": MAX_MEDIAN_PX},
}
report["ok"] = (
    min(report["matched_reference"], report["matched_native"]) >= MIN_MATCHED
    and report["mask_iou_mean"] >= MIN_MASK_IOU
    and report["median_distance_px"] <= MAX_MEDIAN_PX
)
path.write_text(json.dumps(report, indent=2))
print(json.dumps(report, indent=2))
sys.exit(0 if report["ok"] else "the native engine differs from the Python reference")
EOF
}
REQUIRES=data check engine-parity engine_parity

# ---- 7. bench -------------------------------------------------------------------------------------
bench() {
  local options=(--device "$DEVICE" --size "$SIZE" --frames "$BENCH_FRAMES" --json "$OUT_DIR/bench.json")
  # 16-bit rows on the GPU (float16); the dry run leaves them out: a CPU without native bfloat16
  # refuses them, and the GPU's are what matters.
  [ "$DEVICE" = cpu ] || options+=(--half)
  if [ "$DEVICE" = cuda ] && "$PYTHON" -m cathtrack.cli bench --help | grep -c -- --onnxruntime > /dev/null \
    && "$PYTHON" -c "import onnxruntime, sys; sys.exit('CUDAExecutionProvider' not in onnxruntime.get_available_providers())" 2> /dev/null; then
    options+=(--onnxruntime)
  fi
  limited "$PYTHON" -m cathtrack.cli bench "$MODEL" "${options[@]}"
}
check bench bench

# ---- summary --------------------------------------------------------------------------------------
[ "$KEEP_DATA" = 1 ] || rm -rf "$OUT_DIR/data"
rm -rf "$OUT_DIR/.cache"
TOTAL_SECONDS=$(elapsed $(($(now_ms) - STARTED)))
"$PYTHON" - "$OUT_DIR" "$DEVICE" "$TOTAL_SECONDS" "$MINUTES" <<'EOF'
import json
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

out, device, total, minutes = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])


def load(name: str) -> dict | None:
    path = out / name
    return json.loads(path.read_text()) if path.is_file() else None


def last_line(name: str) -> str:
    path = out / "logs" / f"{name}.log"
    lines = path.read_text(errors="replace").strip().splitlines() if path.is_file() else []
    return lines[-1][:110] if lines else ""


def pytest_result() -> str:
    path = out / "pytest_cuda.xml"
    if not path.is_file():
        return last_line("pytest-cuda")
    suite = ElementTree.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    count = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    passed = count["tests"] - count["failures"] - count["errors"] - count["skipped"]
    return (f"{passed} passed, {count['failures'] + count['errors']} failed, "
            f"{count['skipped']} skipped")


info, compare, parity, bench = (load(name) for name in
                                ("build_info.json", "eval_compare.json", "engine_parity.json", "bench.json"))
results = {}
if info:
    results["build-info"] = (
        f"torch {info['torch_runtime_version']}, kernels {info['cuda_kernels']} "
        f"({info['cuda_architectures'] or '-'}), engine {info['cuda_engine']}, GPU {info['gpu']}")
results["pytest-cuda"] = pytest_result()
results["cuda-parity"] = last_line("cuda-parity")
if compare:
    worst = max((row for row in compare["metrics"].items() if row[1]["difference"] is not None),
                key=lambda row: row[1]["difference"] / row[1]["tolerance"], default=None)
    results["eval-compare"] = f"{compare['frames']} frames, " + (
        f"largest |diff| {worst[1]['difference']:.4f} ({worst[0]}, limit {worst[1]['tolerance']})"
        if worst else "no metric")
if parity:
    results["engine-parity"] = (
        f"{parity['frames']} frames, electrodes matched {100 * parity['matched_reference']:.1f} % / "
        f"{100 * parity['matched_native']:.1f} %, median {parity['median_distance_px']:.3f} px, "
        f"mask IoU {parity['mask_iou_mean']:.4f}")
if bench:
    results["bench"] = ", ".join(f"{label} {row['frames_per_s']:.0f}/s"
                                 for label, row in bench["backends"].items())

checks = [line.split("\t") for line in (out / "checks.tsv").read_text().splitlines()]
# The install phases stop the script when they fail: here they passed.
installs = [line.split("\t") for line in (out / "timings.tsv").read_text().splitlines()
            if line.startswith("install-")]
checks = [[name, "pass", seconds] for name, seconds in installs] + checks
lines = [f"cathtrack GPU check (tools/gpu_check.sh) on {device}: {total:.0f} s of a "
         f"{minutes:g} min budget", "",
         "| check | status | s | result |", "| --- | --- | ---: | --- |"]
for name, status, seconds in checks:
    result = results.get(name) or (last_line(name) if status != "pass" else "")
    lines.append(f"| {name} | {status} | {float(seconds):.1f} | {result} |")
if bench:
    facts = bench["machine"]
    lines += ["", f"bench: {bench['frames']} frames at {bench['size']} px, batch 1, "
              f"{facts['device_name']}, torch {facts['torch']}", "",
              "| backend | dtype | inference med ms | end to end med / p99 ms | frames/s |",
              "| --- | --- | ---: | ---: | ---: |"]
    for label, row in bench["backends"].items():
        lines.append(f"| {label} | {row.get('dtype', '')} | {row['inference']['median_ms']:.2f} | "
                     f"{row['end_to_end']['median_ms']:.2f} / {row['end_to_end']['p99_ms']:.2f} | "
                     f"{row['frames_per_s']:.1f} |")
if compare:
    lines += ["", f"eval: CPU against {compare['device']}, {compare['frames']} clinical frames", "",
              "| metric | cpu | " + compare["device"] + " | abs diff | limit |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for key, row in compare["metrics"].items():
        cells = [f"{v:.4f}" if isinstance(v, float) else "n/a"
                 for v in (row["cpu"], row["device"], row["difference"])]
        mark = "" if row["ok"] else " OUT"
        lines.append(f"| {key} | {' | '.join(cells)} | {row['tolerance']}{mark} |")
failed = [name for name, status, _ in checks if status not in ("pass", "skip")]
verdict = "every check passed" + (" or was skipped" if any(s == "skip" for _, s, _ in checks) else "")
lines += ["", f"result: {'not passed: ' + ', '.join(failed) if failed else verdict}"]
text = "\n".join(lines) + "\n"
(out / "summary.md").write_text(text)
(out / "summary.json").write_text(json.dumps({
    "device": device, "seconds": total, "budget_minutes": minutes,
    "checks": {name: {"status": status, "seconds": float(seconds), "result": results.get(name, "")}
               for name, status, seconds in checks},
    "passed": not failed}, indent=2))
print(text, end="")
sys.exit(1 if failed else 0)
EOF
