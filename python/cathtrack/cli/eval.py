"""`cathtrack eval`: score a model on a labelled dataset with the paper's metrics.

Frames are read at their own resolution, run through the reference pipeline
(cathtrack.pipeline: normalise, resize to the model's input, forward, decode, map back), and
compared with the labels in the frame's pixels. Every AP (footprint boxes, OKS points, fixed
8 px boxes) comes from pycocotools; ``--detections`` writes the detections and ground truth behind
each in COCO format so anyone can recompute them (docs/metrics.md).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from cathtrack.settings import DecodeSettings

HELP = (
    "score a model on a labelled dataset (footprint, point and 8 px box AP, F1 at 2 px, MAE, "
    "mean J, Dice, type accuracy, FPS)"
)
EXAMPLES = """  cathtrack eval runs/paper data/clinical_test
  cathtrack eval runs/paper data/clinical_test --no-speed     # no forward-pass speed test
  cathtrack eval runs/paper/checkpoints/best data/clinical_test --json eval.json
  cathtrack eval models/cathtrack_resnet34.safetensors data/test --detections out/detections.json
  cathtrack eval models/cathtrack_resnet34.safetensors data/test --int8 --device cpu
  (writes out/detections.json, out/detections_points.json, out/detections_box8.json and
   out/ground_truth_{footprint,points,box8}.json; recompute e.g. the footprint AP:
   gt = COCO("out/ground_truth_footprint.json"); E = COCOeval(gt, gt.loadRes(
   "out/detections.json"), "bbox"); E.params.catIds = [2]; the others: docs/metrics.md)"""

# --detections PATH: per AP, the suffix added to PATH's name for its detections and the name
# (beside PATH, + ".json") of its ground truth; the keys of cathtrack.metrics.evaluation_files
DETECTION_FILES = (
    ("", "ground_truth_footprint"),
    ("_points", "ground_truth_points"),
    ("_box8", "ground_truth_box8"),
)

CONTRACT_KEYS = (
    "ap",
    "ap50",
    "point_ap",
    "point_ap_2px",
    "box8_ap",
    "box8_ap50",
    "precision_2px",
    "recall_2px",
    "f1_2px",
    "mae_px",
    "mean_j",
    "dice",
    "type_accuracy",
    "catheter_count_accuracy",
    "fps",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="model .safetensors/.json, checkpoint or run dir")
    parser.add_argument("data", type=Path, help="dataset folder (COCO, UCL HDF5, images+masks)")
    parser.add_argument("--json", type=Path, help="write the metrics to this JSON file")
    parser.add_argument(
        "--detections",
        type=Path,
        help="write COCO-format electrode detections here (footprint boxes) and, beside it, "
        "the point and 8 px box detections and the ground truth of each AP",
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    parser.add_argument("--batch", type=int, default=8, help="frames per forward pass (default 8)")
    parser.add_argument(
        "--half",
        action="store_true",
        help="16-bit network: float16 on CUDA, bfloat16 on a CPU with native bfloat16",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="the int8 .pt2 the native engine runs (Tracker(int8=True); CPU; needs torchao)",
    )
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=DecodeSettings.score_threshold,
        help="electrode score for precision/recall/F1/MAE (AP ranks all peaks; default "
        f"{DecodeSettings.score_threshold})",
    )
    parser.add_argument(
        "--radius",
        type=float,
        default=2.0,
        help="match distance of precision/recall/F1/MAE, px (default 2; the AP thresholds are fixed)",
    )
    parser.add_argument("--limit", type=int, help="evaluate only the first N frames")
    parser.add_argument(
        "--no-speed",
        action="store_true",
        help="skip the forward-pass speed test (FPS is then n/a in the table and null in "
        "--json; the test times 10 forward passes after 2 warm-up ones)",
    )
    parser.add_argument(
        "--sequences",
        action="store_true",
        help="tracking metrics (MOTA, IDF1, id switches, MAE, jitter) over the sequences of "
        "sequences.json, temporal tracking on and off; --json gets {tracking_on, tracking_off}",
    )


def resolve_model(path: Path) -> Path:
    """A model file, a checkpoint directory, or a training run directory (its best checkpoint)."""
    from cathtrack.cli import CliError

    candidates = [path]
    if path.is_dir():
        candidates = [path, path / "checkpoints" / "best", path / "checkpoints" / "last"]
    for candidate in candidates:
        if candidate.is_file() and candidate.suffix in (".safetensors", ".json"):
            return candidate
        if candidate.is_dir() and (candidate / "model.json").is_file():
            return candidate
    raise CliError(f"{path}: no model found (a .safetensors file, a checkpoint or a run folder)")


def forward_fps(model, size: int, device: str, repeats: int = 10) -> float:
    """Frames/s of the forward pass alone at batch 1 (median of ``repeats`` timed runs)."""
    import torch

    dtype = next(model.parameters()).dtype
    frame = torch.rand(1, 1, size, size, device=device, dtype=dtype)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 2):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(frame)
            if device == "cuda":
                torch.cuda.synchronize()
            if i >= 2:  # warm-up runs are not timed
                times.append(time.perf_counter() - start)
    times.sort()
    return 1.0 / times[len(times) // 2]


def format_table(metrics: dict) -> str:
    rows = [
        ("electrode AP@[.5:.95]", metrics["ap"], "{:.4f}"),
        ("electrode AP50", metrics["ap50"], "{:.4f}"),
        ("point AP OKS[.5:.95]", metrics["point_ap"], "{:.4f}"),
        ("point AP @2px (OKS .5)", metrics["point_ap_2px"], "{:.4f}"),
        ("8px-box AP@[.5:.95]", metrics["box8_ap"], "{:.4f}"),
        ("8px-box AP50", metrics["box8_ap50"], "{:.4f}"),
        ("precision @2px", metrics["precision_2px"], "{:.4f}"),
        ("recall @2px", metrics["recall_2px"], "{:.4f}"),
        ("F1 @2px", metrics["f1_2px"], "{:.4f}"),
        ("MAE (px)", metrics["mae_px"], "{:.3f}"),
        ("MAE (mm)", metrics["mae_mm"], "{:.3f}"),
        ("mean J (IoU)", metrics["mean_j"], "{:.4f}"),
        ("Dice", metrics["dice"], "{:.4f}"),
        ("type accuracy", metrics["type_accuracy"], "{:.4f}"),
        ("right catheter count", metrics["catheter_count_accuracy"], "{:.4f}"),
        ("forward FPS", metrics["fps"], "{:.1f}"),
    ]
    lines = [f"{'metric':<24}{'value':>10}"]
    for name, value, pattern in rows:
        text = (
            "n/a"
            if value is None or (isinstance(value, float) and math.isnan(value))
            else pattern.format(value)
        )
        lines.append(f"{name:<24}{text:>10}")
    for device_type, accuracy in metrics["type_accuracy_by_type"].items():
        lines.append(f"{'  type ' + device_type:<24}{accuracy:>10.4f}")
    return "\n".join(lines)


def _json_safe(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


TRACKING_KEYS = ("mota", "idf1", "id_switches", "mae_px", "jitter_px")


def sequence_frames(model, reader, size: int, args: argparse.Namespace, device: str) -> tuple:
    """Per sequence, TrackFrames with tracking on (SequenceTracker ids, only confirmed tracks)
    and off (every detection, ids = per-frame indices). A true electrode's identity is (rank of
    its catheter among the frame's catheter annotations, index from the tip)."""
    import numpy as np

    from cathtrack.pipeline import predict
    from cathtrack.tracking import CatheterDetection, SequenceTracker
    from cathtrack.tracking_metrics import TrackFrame

    settings = DecodeSettings(score_threshold=args.score_threshold)
    on, off = [], []
    for indices in reader.sequences:
        tracker, seq_on, seq_off = SequenceTracker(), [], []
        for start in range(0, len(indices), args.batch):
            samples = [reader[i] for i in indices[start : start + args.batch]]
            for sample, prediction in zip(
                samples,
                predict(model, [s.image for s in samples], size, settings, device),
                strict=True,
            ):
                rank = {c.id: k for k, c in enumerate(sample.catheters)}
                owners = np.array([rank.get(int(c), -1) for c in sample.electrode_catheter])
                true_ids = 1000 * owners.astype(np.int64) + sample.electrode_index
                tracks = tracker.update(
                    prediction.electrodes,
                    [
                        CatheterDetection(line, kind, group)
                        for (kind, group), line in zip(
                            prediction.catheters, prediction.centerlines, strict=True
                        )
                    ],
                )
                kept = tracks.electrode_track_ids >= 0
                seq_on.append(
                    TrackFrame(
                        sample.electrodes,
                        true_ids,
                        tracks.electrodes[kept],
                        tracks.electrode_track_ids[kept],
                    )
                )
                n = len(prediction.electrodes)
                seq_off.append(
                    TrackFrame(sample.electrodes, true_ids, prediction.electrodes, np.arange(n))
                )
        on.append(seq_on)
        off.append(seq_off)
    return on, off


def run_sequences(model, reader, size: int, args: argparse.Namespace, device: str) -> int:
    from cathtrack.checkpoint import write_text_atomic
    from cathtrack.cli import CliError
    from cathtrack.data.coco import CocoReader
    from cathtrack.tracking_metrics import tracking_metrics

    if not isinstance(reader, CocoReader) or not reader.sequences:
        raise CliError(f"{args.data}: --sequences needs a COCO dataset with sequences.json")
    on, off = sequence_frames(model, reader, size, args, device)
    metrics = {
        "tracking_on": tracking_metrics(on, args.radius),
        "tracking_off": tracking_metrics(off, args.radius),
    }
    print(f"{'metric':<16}{'tracking on':>14}{'tracking off':>14}")
    for key in TRACKING_KEYS:
        values = [metrics[mode][key] for mode in ("tracking_on", "tracking_off")]
        print(f"{key:<16}" + "".join(f"{v:>14.4f}" for v in values))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.json, json.dumps(_json_safe(metrics), indent=2))
        print(f"wrote {args.json}")
    return 0


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from cathtrack.checkpoint import load_model, write_text_atomic
    from cathtrack.cli import CliError
    from cathtrack.data.check import check_dataset
    from cathtrack.data.coco import CocoReader
    from cathtrack.data.readers import open_reader
    from cathtrack.device import dtype_name, half_dtype, pick_device
    from cathtrack.metrics import BOX_SIDE, POINT_AREA, POINT_SIGMA, evaluate, evaluation_files
    from cathtrack.pipeline import predict
    from cathtrack.settings import EVAL_SCORE_THRESHOLD

    if args.batch < 1:
        raise CliError(f"--batch must be >= 1, got {args.batch}")
    if not 0.0 <= args.score_threshold <= 1.0:  # a heatmap score is a probability
        raise CliError(f"--score-threshold must be in [0, 1], got {args.score_threshold}")
    try:
        device = pick_device(args.device)
    except ValueError as error:
        raise CliError(f"--device: {error}") from error
    check = check_dataset(args.data)  # before any work: a bad file must not stop the run midway
    if not check.usable:
        for line in check.other_lines():
            print(line, file=sys.stderr)
        raise CliError(check.refusal())
    model_path = resolve_model(args.model)
    try:
        model, metadata = load_model(model_path, device)
        if args.half:
            model = model.to(half_dtype(device))
        if args.int8:  # the cached export of Tracker(int8=True), its compiled code run here
            from cathtrack.export import PackagedNetwork, cached_export

            if device != "cpu" or args.half:
                raise ValueError("--int8 runs on the CPU (--device cpu), without --half")
            model = PackagedNetwork(cached_export(model_path, "pt2", "cpu", int8=True))
        reader = open_reader(args.data)
    except (FileNotFoundError, ValueError, ModuleNotFoundError) as error:
        raise CliError(str(error)) from error
    size = int(metadata["input_size"])
    if args.sequences:
        return run_sequences(model, reader, size, args, device)
    count = len(reader) if args.limit is None else min(args.limit, len(reader))
    if count == 0:
        raise CliError(f"{args.data}: the dataset has no frames")
    image_ids = (
        reader.image_ids[:count] if isinstance(reader, CocoReader) else list(range(1, count + 1))
    )
    ground_truth = reader.coco if isinstance(reader, CocoReader) else None

    # every peak the AP ranks; precision/recall/F1 count those above --score-threshold
    settings = DecodeSettings(score_threshold=EVAL_SCORE_THRESHOLD)
    samples, predictions = [], []
    with tqdm(total=count, desc="eval", unit="frame") as progress:
        for start in range(0, count, args.batch):
            try:
                batch = [reader[i] for i in range(start, min(start + args.batch, count))]
            except (OSError, ValueError) as error:  # every frame has ground truth: stop
                raise CliError(str(error)) from error
            predictions += predict(model, [s.image for s in batch], size, settings, device)
            samples += batch
            progress.update(len(batch))

    metrics = evaluate(
        samples,
        predictions,
        image_ids,
        ground_truth=ground_truth,
        radius=args.radius,
        score_threshold=args.score_threshold,
    )
    metrics["fps"] = None if args.no_speed else forward_fps(model, size, device)
    metrics.update(
        model=str(model_path),
        data=str(args.data),
        device=device,
        input_size=size,
        dtype="int8" if args.int8 else dtype_name(next(model.parameters()).dtype),
        torch_threads=torch.get_num_threads(),
        point_oks_sigma=POINT_SIGMA,
        point_area=POINT_AREA,
        box_side_px=BOX_SIDE,
    )
    print(format_table(metrics))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.json, json.dumps(_json_safe(metrics), indent=2))
        print(f"wrote {args.json}")
    if args.detections:
        files = evaluation_files(samples, predictions, image_ids, ground_truth=ground_truth)
        for path in write_detection_files(args.detections, files):
            print(f"wrote {path}")
    return 0


def detection_file_paths(detections: Path) -> dict[str, Path]:
    """The path of each :func:`cathtrack.metrics.evaluation_files` entry for
    ``--detections detections``: the detections of the AP of suffix X as ``detections`` with X
    added to its name, and their ground truth beside it."""
    paths = {}
    for suffix, truth in DETECTION_FILES:
        name = detections.stem + suffix + detections.suffix
        paths["detections" + suffix] = detections.with_name(name)
        paths[truth] = detections.with_name(truth + ".json")
    return paths


def write_detection_files(detections: Path, files: dict) -> list[Path]:
    """Writes :func:`cathtrack.metrics.evaluation_files` beside ``detections``; the paths."""
    detections.parent.mkdir(parents=True, exist_ok=True)
    paths = detection_file_paths(detections)
    for key, path in paths.items():
        path.write_text(json.dumps(files[key]))
    return list(paths.values())
