#!/usr/bin/env bash
# One call from a copied working tree to a trained, evaluated and exported model on one GPU:
#
#   bash tools/gpu_train.sh OUT_DIR [options] [-- key=value ...]    (or OUT=... bash tools/gpu_train.sh)
#
# 1. install   the package from this working tree, offline: missing dependencies from wheelhouse/
#              (make wheelhouse), then pip install --no-build-isolation --no-deps -e .
#              (skipped with CATHTRACK_SKIP_INSTALL=1)
# 2. data      cathtrack synth on every core: training set (real, seed 0, --frames), validation
#              (real, seed 1), tests (clinical seed 1000, real seed 1001), all over the
#              vendored training angiograms
# 3. calibrate a short run of configs/gpu_resnet34.yaml that measures a step, a validation and
#              the fixed costs; then `steps` is set so the training run fits in --minutes
# 4. train     configs/gpu_resnet34.yaml with those steps
# 5. evaluate  the best checkpoint on both test sets (cathtrack eval) and on the real
#              angiograms of data/angiograms/testing (cathtrack negatives)
# 6. export    fp16 weights + metadata to OUT/model/, logs and plots to OUT/, and
#              OUT/summary.txt
#
# Arguments after `--` are config overrides for the training (e.g. model.backbone=resnet18).
# Everything the script writes goes to OUT (logs of every phase: OUT/logs/). See
# docs/training.md, "Training on a GPU in one call".
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bash tools/gpu_train.sh [OUT_DIR] [options] [-- key=value ...]

  OUT_DIR                  where everything goes (default: $OUT)
  --minutes M              training budget in minutes, validation included (default 5)
  --frames N               training frames to render (default 5000)
  --device cuda|cpu        (default cuda; cpu for a dry run)
  --size S                 frame side in pixels, a multiple of 32 (default 256)
  --batch B                batch size (default 32)
  --val-frames N           validation frames (default 200)
  --test-frames N          frames of each test set (default 200)
  --negatives-limit N      only the first N angiograms for cathtrack negatives (default all)
  --calibration-steps N    steps of the calibration run (default 50)
  --validations N          validations during training, besides step 0 (default 4)
  --keep-data              keep the rendered frames (OUT/data; removed at the end otherwise)
  --keep-checkpoints       keep the run's checkpoints (OUT/run/checkpoints; removed otherwise)
  -- key=value ...         config overrides for the calibration and training runs

environment: PYTHON (default: python from PATH), CATHTRACK_SKIP_INSTALL=1 (no install step)
EOF
}

SCRIPT=gpu_train
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tools/gpu_common.sh
source "$REPO/tools/gpu_common.sh"

OUT_DIR=${OUT:-}
MINUTES=5
FRAMES=5000
DEVICE=cuda
SIZE=256
BATCH=32
VAL_FRAMES=200
TEST_FRAMES=200
NEGATIVES_LIMIT=
CALIBRATION_STEPS=50
VALIDATIONS=4
KEEP_DATA=0
KEEP_CHECKPOINTS=0
OVERRIDES=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --minutes) MINUTES=${2:?--minutes needs a value}; shift 2 ;;
    --frames) FRAMES=${2:?--frames needs a value}; shift 2 ;;
    --device) DEVICE=${2:?--device needs a value}; shift 2 ;;
    --size) SIZE=${2:?--size needs a value}; shift 2 ;;
    --batch) BATCH=${2:?--batch needs a value}; shift 2 ;;
    --val-frames) VAL_FRAMES=${2:?--val-frames needs a value}; shift 2 ;;
    --test-frames) TEST_FRAMES=${2:?--test-frames needs a value}; shift 2 ;;
    --negatives-limit) NEGATIVES_LIMIT=${2:?--negatives-limit needs a value}; shift 2 ;;
    --calibration-steps) CALIBRATION_STEPS=${2:?--calibration-steps needs a value}; shift 2 ;;
    --validations) VALIDATIONS=${2:?--validations needs a value}; shift 2 ;;
    --keep-data) KEEP_DATA=1; shift ;;
    --keep-checkpoints) KEEP_CHECKPOINTS=1; shift ;;
    --) shift; OVERRIDES=("$@"); break ;;
    -*) usage >&2; die "unknown option $1" ;;
    *) OUT_DIR=$1; shift ;;
  esac
done
[ -n "$OUT_DIR" ] || { usage >&2; die "give OUT_DIR (or set \$OUT)"; }
case "$DEVICE" in cuda | cpu) ;; *) die "--device must be cuda or cpu, got $DEVICE" ;; esac
for name in FRAMES SIZE BATCH VAL_FRAMES TEST_FRAMES CALIBRATION_STEPS VALIDATIONS; do
  option=${name,,}
  [[ ${!name} =~ ^[0-9]+$ ]] && [ "${!name}" -gt 0 ] || die "--${option//_/-} must be a positive integer, got ${!name}"
done
[[ $MINUTES =~ ^[0-9]*\.?[0-9]+$ ]] || die "--minutes must be a positive number, got $MINUTES"
[ $((SIZE % 32)) -eq 0 ] || die "--size must be a multiple of 32, got $SIZE"

resolve_python
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd) # relative to the caller's directory
cd "$REPO"
LOGS=$OUT_DIR/logs
DATA=$OUT_DIR/data
RUN=$OUT_DIR/run
CALIBRATE=$OUT_DIR/calibrate
mkdir -p "$LOGS" "$OUT_DIR/eval" "$OUT_DIR/model"
# Caches inside OUT, nothing written elsewhere.
export MPLCONFIGDIR=$OUT_DIR/.cache/matplotlib CATHTRACK_CACHE=$OUT_DIR/.cache/cathtrack
export MPLBACKEND=Agg PYTHONUNBUFFERED=1
CORES=$(nproc)
WORKERS=$((CORES > 2 ? CORES - 2 : 0))
TIMINGS=$OUT_DIR/timings.tsv
: > "$TIMINGS"

STARTED=$(now_ms)

echo "gpu_train: repository $REPO, output $OUT_DIR"
echo "gpu_train: device $DEVICE, $MINUTES min of training, $FRAMES frames at ${SIZE}px, batch $BATCH, $CORES cores ($WORKERS loader workers)"

# ---- device: fail early, in one line --------------------------------------------------------------
check_device

# ---- 1. install -----------------------------------------------------------------------------------
if [ "${CATHTRACK_SKIP_INSTALL:-0}" = 1 ]; then
  echo "[$(date +%H:%M:%S)] install: skipped (CATHTRACK_SKIP_INSTALL=1)"
else
  phase install-dependencies install_dependencies
  phase install-package install_package
fi

# ---- 2. data --------------------------------------------------------------------------------------
BACKGROUNDS=data/angiograms/training
synth() { # OUT_SUBDIR N PRESET SEED
  "$PYTHON" -m cathtrack.cli synth --out "$DATA/$1" --n "$2" --size "$SIZE" --preset "$3" \
    --seed "$4" --backgrounds "$BACKGROUNDS" --workers "$CORES" --overwrite
}
phase data-train synth train "$FRAMES" real 0
phase data-val synth val "$VAL_FRAMES" real 1
phase data-test-clinical synth test_clinical "$TEST_FRAMES" clinical 1000
phase data-test-real synth test_real "$TEST_FRAMES" real 1001

# ---- 3. calibration and 4. training ---------------------------------------------------------------
TRAIN_ARGS=(
  --config configs/gpu_resnet34.yaml --no-progress
  "data.train.path=$DATA/train" "data.val.path=$DATA/val" "data.size=$SIZE"
  "batch_size=$BATCH" "device=$DEVICE" "data.num_workers=$WORKERS"
)
rm -rf "$CALIBRATE" "$RUN"

# Runs the calibration, watching train_log.csv grow to time the steps as the loop sees them
# (loader waits included), and writes the training plan (steps that fit the budget).
calibrate() {
  "$PYTHON" - "$CALIBRATE" "$CALIBRATION_STEPS" "$MINUTES" "$VALIDATIONS" -- \
    "${TRAIN_ARGS[@]}" "steps=$CALIBRATION_STEPS" val_every=0 val_at_start=false \
    "checkpoint_every=$CALIBRATION_STEPS" ${OVERRIDES[@]+"${OVERRIDES[@]}"} <<'EOF'
import csv
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

run_dir, steps, minutes, validations = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
train_args = sys.argv[sys.argv.index("--") + 1 :]
train_log, val_log = run_dir / "train_log.csv", run_dir / "val_log.csv"


def rows() -> int:
    try:
        with train_log.open() as handle:
            return max(0, sum(1 for _ in handle) - 1)
    except FileNotFoundError:
        return 0


command = [sys.executable, "-m", "cathtrack.train.cli", *train_args, "--out", str(run_dir)]
print(" ".join(command), flush=True)
started = time.monotonic()
process = subprocess.Popen(command)
samples = []  # (seconds since start, rows of train_log.csv) whenever the count changes
while process.poll() is None:
    count = rows()
    if count and (not samples or samples[-1][1] != count):
        samples.append((time.monotonic() - started, count))
    time.sleep(0.05)
finished, finished_wall = time.monotonic() - started, time.time()
if process.returncode:
    sys.exit(f"the calibration run failed (exit {process.returncode})")


def since_start(path: Path) -> float:
    """When ``path`` was last written, in seconds since the run started."""
    return finished - (finished_wall - path.stat().st_mtime)


count = rows()
if not samples or samples[-1][1] != count:
    samples.append((since_start(train_log), count))

with train_log.open() as handle:
    seconds = [float(row["seconds"]) for row in csv.DictReader(handle)]
median = statistics.median(seconds)
# Steps after the first ones (cuDNN and allocator warm-up), wall clock between log rows.
warm = next((s for s in samples if s[1] >= max(2, count // 3)), samples[0])
last = samples[-1]
wall = (last[0] - warm[0]) / (last[1] - warm[1]) if last[1] > warm[1] else median
step = max(median, wall)
startup = samples[0][0]
# After the last step row: the stage's checkpoint and the final validation, then plots/summary.
end_of_steps, validated = since_start(train_log), since_start(val_log)
validation = max(0.0, validated - end_of_steps)
closing = max(0.0, finished - validated)

budget = minutes * 60.0
usable = 0.9 * budget  # 10 % margin
fixed = startup + closing + (validations + 1) * validation  # step 0 + `validations`
planned = int((usable - fixed) / step)
note = ""
if planned < 10:
    planned, note = 10, "the budget does not cover the fixed costs; training the minimum 10 steps"
val_every = max(1, math.ceil(planned / validations))
plan = {
    "budget_s": budget,
    "calibration_steps": count,
    "median_step_s": median,
    "wall_step_s": wall,
    "step_s": step,
    "startup_s": startup,
    "validation_s": validation,
    "closing_s": closing,
    "steps": planned,
    "val_every": val_every,
    "warmup_steps": min(200, max(1, planned // 10)),
    "expected_s": fixed + planned * step,
    "note": note,
}
(run_dir / "plan.json").write_text(json.dumps(plan, indent=2))
print(json.dumps(plan, indent=2))
EOF
}
phase calibrate calibrate
read -r STEPS VAL_EVERY WARMUP EXPECTED STEP_S <<< "$("$PYTHON" -c '
import json, sys
p = json.load(open(sys.argv[1]))
print(p["steps"], p["val_every"], p["warmup_steps"], round(p["expected_s"]), "%.4f" % p["step_s"])
if p["note"]:
    print("gpu_train: " + p["note"], file=sys.stderr)
' "$CALIBRATE/plan.json")"
echo "    plan: $STEPS steps of ${STEP_S} s, validation every $VAL_EVERY, expected ${EXPECTED} s of ${MINUTES} min"

TRAIN_STARTED=$(now_ms)
phase train "$PYTHON" -m cathtrack.train.cli "${TRAIN_ARGS[@]}" "steps=$STEPS" \
  "val_every=$VAL_EVERY" "checkpoint_every=$VAL_EVERY" "schedule.warmup_steps=$WARMUP" \
  val_at_start=true ${OVERRIDES[@]+"${OVERRIDES[@]}"} --out "$RUN"
TRAIN_SECONDS=$(elapsed $(($(now_ms) - TRAIN_STARTED)))
BEST=$RUN/checkpoints/best

# ---- 5. evaluation --------------------------------------------------------------------------------
phase eval-clinical "$PYTHON" -m cathtrack.cli eval "$BEST" "$DATA/test_clinical" \
  --device "$DEVICE" --batch 32 --json "$OUT_DIR/eval/clinical_seed1000.json"
phase eval-real "$PYTHON" -m cathtrack.cli eval "$BEST" "$DATA/test_real" \
  --device "$DEVICE" --batch 32 --json "$OUT_DIR/eval/real_seed1001.json"
# The reference decoding (as eval and validation use): no export/compile step in the budget.
NEGATIVES_ARGS=()
[ -z "$NEGATIVES_LIMIT" ] || NEGATIVES_ARGS=(--limit "$NEGATIVES_LIMIT")
phase negatives "$PYTHON" -m cathtrack.cli negatives data/angiograms/testing --model "$BEST" \
  --device "$DEVICE" --backend python --json "$OUT_DIR/eval/negatives_testing.json" \
  ${NEGATIVES_ARGS[@]+"${NEGATIVES_ARGS[@]}"}

# ---- 6. export, logs, summary ---------------------------------------------------------------------
export_model() {
  "$PYTHON" tools/ship_model.py "$BEST" "$OUT_DIR/model/model.safetensors" \
    --eval "eval_clinical_seed1000=$OUT_DIR/eval/clinical_seed1000.json" \
    --eval "eval_real_seed1001=$OUT_DIR/eval/real_seed1001.json" \
    --negatives "$OUT_DIR/eval/negatives_testing.json" --recipe tools/gpu_train.sh
}
phase export export_model

cp "$RUN/train_log.csv" "$RUN/val_log.csv" "$RUN/config.yaml" "$OUT_DIR/"
cp "$RUN/summary.json" "$OUT_DIR/train_summary.json"
cp "$CALIBRATE/plan.json" "$OUT_DIR/calibration.json"
rm -rf "$OUT_DIR/plots" && cp -r "$RUN/plots" "$OUT_DIR/plots"
if [ "$KEEP_CHECKPOINTS" = 0 ]; then
  rm -rf "$RUN/checkpoints" "$CALIBRATE/checkpoints"
  echo "removed the run's checkpoints (--keep-checkpoints keeps them); the model is in model/"
fi
if [ "$KEEP_DATA" = 0 ]; then
  rm -rf "$DATA"
  echo "removed the rendered frames (--keep-data keeps them; the seeds re-render them)"
fi

rm -rf "$OUT_DIR/.cache"

TOTAL_SECONDS=$(elapsed $(($(now_ms) - STARTED)))
"$PYTHON" - "$OUT_DIR" "$MINUTES" "$TRAIN_SECONDS" "$TOTAL_SECONDS" "$DEVICE" <<'EOF'
import json
import sys
from pathlib import Path

out, minutes = Path(sys.argv[1]), float(sys.argv[2])
train_seconds, total_seconds, device = float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
summary = json.loads((out / "train_summary.json").read_text())
plan = json.loads((out / "calibration.json").read_text())
clinical = json.loads((out / "eval" / "clinical_seed1000.json").read_text())
real = json.loads((out / "eval" / "real_seed1001.json").read_text())
negatives = json.loads((out / "eval" / "negatives_testing.json").read_text())["summary"]
config = summary["config"]
lines = [
    f"cathtrack GPU training recipe (tools/gpu_train.sh) on {device}",
    f"model: {config['model']['backbone']} x{config['model']['width']}, heatmap stride "
    f"{config['model']['heatmap_stride']}, {config['data']['size']} px, batch "
    f"{config['batch_size']}, lr {config['optimizer']['lr']}, {config['prioritization']['name']}",
    f"steps: {summary['steps']} ({summary['steps_per_second']:.2f} steps/s; calibrated "
    f"{plan['step_s']:.4f} s per step, {plan['validation_s']:.1f} s per validation)",
    f"training: {train_seconds / 60:.2f} min of a {minutes:g} min budget"
    f" ({'within' if train_seconds <= minutes * 60 else 'OVER'} the budget); "
    f"whole script {total_seconds / 60:.2f} min",
    f"best step {summary['best_step']} (validation mean KPI {summary['best_mean_kpi'] or 0:.4f})",
    f"model: model/model.safetensors + model.json (float16)",
    "",
    "| test set | F1 at 2 px | precision / recall | AP | point AP at 2 px | mean J | Dice | type accuracy |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
]


def number(metrics: dict, key: str) -> str:
    value = metrics.get(key)
    return "-" if value is None else f"{value:.3f}"


for name, metrics in (("clinical seed 1000", clinical), ("real seed 1001", real)):
    cells = [f"{name} ({metrics['frames']} frames)", number(metrics, "f1_2px")]
    cells.append(f"{number(metrics, 'precision_2px')} / {number(metrics, 'recall_2px')}")
    cells += [number(metrics, key) for key in ("ap", "point_ap_2px", "mean_j", "dice")]
    cells.append(number(metrics, "type_accuracy"))
    lines.append("| " + " | ".join(cells) + " |")
lines += [
    "",
    f"angiograms (data/angiograms/testing, {int(negatives['frames'])} frames without electrode "
    "catheters):",
    f"  vessel pixels marked catheter {100 * negatives['vessel_marked_pooled']:.2f} %, "
    f"frame marked catheter {100 * negatives['frame_marked_mean']:.2f} %, "
    f"catheters/electrodes per frame {negatives['catheters_mean']:.2f} / "
    f"{negatives['electrodes_mean']:.2f}, frames with a false electrode "
    f"{100 * negatives['frames_with_electrodes']:.0f} %",
    "",
    "phase timings (s):",
]
for line in (out / "timings.tsv").read_text().splitlines():
    name, seconds = line.split("\t")
    lines.append(f"  {name:<20} {float(seconds):8.1f}")
lines.append(f"  {'total':<20} {total_seconds:8.1f}")
text = "\n".join(lines) + "\n"
(out / "summary.txt").write_text(text)
print(text, end="")
EOF
echo "gpu_train: wrote $OUT_DIR/summary.txt, model/model.safetensors (+ .json), eval/*.json, plots/, logs/"
