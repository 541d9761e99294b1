"""`cathtrack predict`: track images, folders, videos and DICOM files; write overlays and JSON.

Every frame goes through ``cathtrack.Tracker``. A single-frame file gets a PNG overlay; a video
or a multi-frame file (multi-page TIFF, multi-frame DICOM) gets an MP4 (or a folder of PNG frames
with ``--video-format png``). ``results.jsonl`` holds one line per frame. A file that cannot be
read is reported on one line and the run goes on with the next one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cathtrack.settings import DecodeSettings

HELP = "track electrodes and catheters in images, folders, videos or DICOM files"
EXAMPLES = """  cathtrack predict frame.png --out out
  cathtrack predict recordings/ run.avi study.dcm --out out --device cpu
  cathtrack predict run.mp4 --out out --model model.safetensors --video-format png

exit status: 0 when every input was read, 1 when some files could not be read (each is
named on one line; the others are still processed), 2 on bad arguments."""

RESULTS_FILE = "results.jsonl"
# Frame rate of MP4 overlays for multi-frame files that do not state one (TIFF, DICOM).
DEFAULT_OVERLAY_FPS = 15.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="files or folders")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--model", type=Path, help="checkpoint or exported .pt2/.ts (default: the shipped model)"
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    parser.add_argument("--backend", default="native", help="native | python (default native)")
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=DecodeSettings.score_threshold,
        help=f"minimum electrode score (default {DecodeSettings.score_threshold})",
    )
    parser.add_argument(
        "--video-format",
        default="mp4",
        choices=("mp4", "png"),
        help="overlay of a multi-frame file: one MP4, or a folder of PNG frames (default mp4)",
    )


class _OverlaySink:
    """Writes the overlays of one input file.

    The first overlay is held back until a second frame arrives (or the file ends), because a
    TIFF or DICOM file is known to be multi-frame only then; videos always become a video.
    """

    def __init__(self, source: str, out_dir: Path, name: str, video_format: str) -> None:
        from cathtrack.io import detect_kind

        self.source = Path(source)
        self.out_dir = out_dir
        self.name = name
        self.video_format = video_format
        self.is_video = detect_kind(self.source) == "video"
        self.pending = None
        self.writer = None
        self.count = 0

    def add(self, overlay) -> str:
        """Stores one overlay; returns the path it is (or will be) written to."""
        self.count += 1
        if self.count == 1 and not self.is_video:
            self.pending = overlay
            return str(self.out_dir / f"{self.name}.png")
        if self.pending is not None:
            self._write_frame(self.pending, 0)
            self.pending = None
        return self._write_frame(overlay, self.count - 1)

    def close(self) -> None:
        import cv2

        if self.pending is not None:
            cv2.imwrite(str(self.out_dir / f"{self.name}.png"), self.pending)
        if self.writer is not None:
            self.writer.release()

    def _write_frame(self, overlay, index: int) -> str:
        import cv2

        if self.video_format == "png":
            folder = self.out_dir / self.name
            folder.mkdir(exist_ok=True)
            path = folder / f"frame_{index:05d}.png"
            cv2.imwrite(str(path), overlay)
            return str(path)
        path = self.out_dir / f"{self.name}.mp4"
        if self.writer is None:
            height, width = overlay.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self.writer = cv2.VideoWriter(str(path), fourcc, self._fps(), (width, height))
        self.writer.write(overlay)
        return str(path)

    def _fps(self) -> float:
        import cv2

        if not self.is_video:
            return DEFAULT_OVERLAY_FPS
        capture = cv2.VideoCapture(str(self.source))
        fps = capture.get(cv2.CAP_PROP_FPS)
        capture.release()
        return fps if fps > 0 else DEFAULT_OVERLAY_FPS


def _unique_name(source: str, taken: set[str]) -> str:
    """The file's stem, numbered when two inputs share one (a.png and a.avi, or sub/a.png)."""
    stem = Path(source).stem or "input"
    name, number = stem, 1
    while name in taken:
        name, number = f"{stem}_{number}", number + 1
    taken.add(name)
    return name


def _make_tracker(args: argparse.Namespace):
    from cathtrack.cli import CliError
    from cathtrack.tracker import Tracker

    try:
        return Tracker(
            args.model,
            device=args.device,
            backend=args.backend,
            score_threshold=args.score_threshold,
        )
    except (FileNotFoundError, ValueError) as error:
        raise CliError(str(error)) from error


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cathtrack.cli import CliError
    from cathtrack.io import ReadError, iter_inputs
    from cathtrack.tracker import draw

    missing = [str(path) for path in args.inputs if not path.exists()]
    if missing:
        raise CliError(f"no such file or folder: {', '.join(missing)}")
    if not 0.0 <= args.score_threshold <= 1.0:
        raise CliError(f"--score-threshold must be in [0, 1], got {args.score_threshold}")
    tracker = _make_tracker(args)
    args.out.mkdir(parents=True, exist_ok=True)

    failed: list[str] = []
    taken_names: set[str] = set()
    sink: _OverlaySink | None = None
    frame_count = 0
    with (
        open(args.out / RESULTS_FILE, "w") as results,
        tqdm(desc="predict", unit="frame") as progress,
    ):
        for item in iter_inputs(args.inputs):
            if isinstance(item, ReadError):
                # tqdm.write keeps the progress bar intact around the message.
                tqdm.write(f"cathtrack predict: {item}", file=sys.stderr)
                failed.append(item.path)
                continue
            if sink is None or str(sink.source) != item.source or item.index == 0:
                if sink is not None:
                    sink.close()
                name = _unique_name(item.source, taken_names)
                sink = _OverlaySink(item.source, args.out, name, args.video_format)
            result = tracker(item.image)
            overlay_path = sink.add(draw(item.image, result))
            record = {
                "source": item.source,
                "frame": item.index,
                "pixel_spacing_mm": item.pixel_spacing_mm,
                "overlay": overlay_path,
                **result.to_dict(),
            }
            results.write(json.dumps(record) + "\n")
            frame_count += 1
            progress.update()
        if sink is not None:
            sink.close()

    print(f"tracked {frame_count} frames; wrote overlays and {args.out / RESULTS_FILE}")
    if failed:
        print(f"{len(failed)} input(s) could not be read (listed above)", file=sys.stderr)
        return 1
    return 0
