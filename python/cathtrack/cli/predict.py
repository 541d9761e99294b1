"""`cathtrack predict`: track images, folders, videos and DICOM files; write overlays and JSON.

Every frame goes through ``cathtrack.Tracker``. A single-frame file gets a PNG overlay; a video
or a multi-frame file (multi-page TIFF, multi-frame DICOM) gets an MP4 (or a folder of PNG frames
with ``--video-format png``). ``results.jsonl`` holds one line per frame.

Failures are isolated (docs/reliability.md): a file that cannot be read (or is read only in part:
a truncated video), and a frame the tracker refuses, each get one line on stderr and one line in
``results.jsonl`` with an ``"error"`` key instead of the results, and the run goes on with the
next frame; the exit status says whether anything failed. Overlays are written to a hidden
temporary file and renamed into place when complete, so a file named ``NAME.png``/``NAME.mp4``
is never half written; SIGINT and SIGTERM stop the run after finalising the MP4 being written.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import uuid
from pathlib import Path

from cathtrack.settings import DecodeSettings

HELP = "track electrodes and catheters in images, folders, videos or DICOM files"
EXAMPLES = """  cathtrack predict frame.png --out out
  cathtrack predict recordings/ run.avi study.dcm --out out --device cpu
  cathtrack predict run.mp4 --out out --model model.safetensors --video-format png

exit status: 0 when every frame of every input was tracked; 1 when some input could not be read
(or only in part, e.g. a truncated video) or some frame was refused: each failure is named on one
line of stderr and recorded in results.jsonl with an "error" key, and everything else is still
processed; 2 on bad arguments or an unusable model (one line); 130 on SIGINT and 143 on SIGTERM,
after finalising the overlays written so far."""

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
    Every file is written under a hidden temporary name and renamed into place when complete
    (a PNG at once, an MP4 at :meth:`close`). Overlays of another size than the video's first
    frame (a multi-page TIFF with pages of different sizes) are scaled to fit and padded, never
    dropped.
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
        self.video_path: Path | None = None
        self.video_temporary: Path | None = None
        self.video_size: tuple[int, int] | None = None

    def add(self, overlay, index: int) -> str:
        """Stores the overlay of frame ``index``; returns the path it is (or will be) written
        to: ``NAME.png`` for frame 0 of a file not known to be multi-frame yet, else the MP4
        (or ``NAME/frame_<index>.png``)."""
        if index == 0 and not self.is_video:
            self.pending = overlay
            return str(self.out_dir / f"{self.name}.png")
        self.flush_pending()
        return self._write_frame(overlay, index)

    def flush_pending(self) -> str | None:
        """The file turned out multi-frame: writes a held-back frame 0 into the video (or the
        frame folder); returns where it went (None when nothing was held back)."""
        if self.pending is None:
            return None
        pending, self.pending = self.pending, None
        return self._write_frame(pending, 0)

    def close(self) -> None:
        """Writes a held-back single overlay, finalises the MP4 and moves it into place."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            _write_png(self.out_dir / f"{self.name}.png", pending)
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.release()  # writes the MP4's index: the file is complete only now
            os.replace(self.video_temporary, self.video_path)

    def discard(self) -> None:
        """Drops an unfinished MP4 (its temporary file), for errors while closing."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.video_temporary is not None:
            self.video_temporary.unlink(missing_ok=True)

    def _write_frame(self, overlay, index: int) -> str:
        import cv2

        if self.video_format == "png":
            folder = self.out_dir / self.name
            folder.mkdir(exist_ok=True)
            path = folder / f"frame_{index:05d}.png"
            _write_png(path, overlay)
            return str(path)
        path = self.out_dir / f"{self.name}.mp4"
        if self.writer is None:
            height, width = overlay.shape[:2]
            # FFmpeg picks the container from the suffix: the temporary name ends in .mp4 too.
            temporary = self.out_dir / f".{self.name}.{uuid.uuid4().hex[:12]}.partial.mp4"
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            writer = cv2.VideoWriter(str(temporary), fourcc, self._fps(), (width, height))
            if not writer.isOpened():
                writer.release()
                temporary.unlink(missing_ok=True)
                raise OSError(
                    f"cannot write {path} (no MP4 encoder for {width}x{height} in this OpenCV "
                    "build; try --video-format png)"
                )
            self.writer, self.video_path, self.video_temporary = writer, path, temporary
            self.video_size = (width, height)
        self.writer.write(_fit(overlay, self.video_size))
        return str(path)

    def _fps(self) -> float:
        import cv2

        if not self.is_video:
            return DEFAULT_OVERLAY_FPS
        capture = cv2.VideoCapture(str(self.source))
        fps = capture.get(cv2.CAP_PROP_FPS)
        capture.release()
        return fps if fps > 0 else DEFAULT_OVERLAY_FPS


def _write_png(path: Path, image) -> None:
    """A PNG written atomically (cv2.imwrite would leave half a file when killed)."""
    import cv2

    from cathtrack.checkpoint import write_bytes_atomic

    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"cannot encode the overlay {path} as PNG")
    write_bytes_atomic(path, encoded.tobytes())


def _fit(image, size: tuple[int, int]):
    """``image`` scaled to fit (width, height) ``size`` and padded with black; as is when it
    already has that size (a VideoWriter silently drops frames of any other size)."""
    import cv2
    import numpy as np

    width, height = size
    if image.shape[1] == width and image.shape[0] == height:
        return image
    scale = min(width / image.shape[1], height / image.shape[0])
    new_width = max(1, min(width, round(image.shape[1] * scale)))
    new_height = max(1, min(height, round(image.shape[0] * scale)))
    resized = cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width, 3), np.uint8)
    top, left = (height - new_height) // 2, (width - new_width) // 2
    canvas[top : top + new_height, left : left + new_width] = resized
    return canvas


class _Output:
    """results.jsonl and the overlays of one run, in input order.

    The record of frame 0 of a file that may be multi-frame (TIFF, DICOM) is held back with its
    overlay until the file turns out to have a second frame (its overlay then goes into the
    video, and the record says so) or ends. Failures get one stderr line and one record with an
    ``"error"`` key. Leaving the ``with`` block (normally, on an error or on SIGINT/SIGTERM)
    finalises the current overlay file and writes the held record.
    """

    def __init__(self, results_path: Path, out_dir: Path, video_format: str) -> None:
        self.results_path = results_path
        self.out_dir = out_dir
        self.video_format = video_format
        self.sink: _OverlaySink | None = None
        self.held: dict | None = None
        self.taken_names: set[str] = set()
        self.unreadable: list[str] = []  # inputs that could not be read (or only in part)
        self.refused = 0  # frames read but not tracked
        self.tracked_count = 0

    def __enter__(self) -> _Output:
        self.results = open(self.results_path, "w")  # noqa: SIM115 (closed in __exit__)
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.finish_file()
        finally:
            self.results.close()

    def start_frame(self, item) -> None:
        """Opens the overlay sink of a new file, or learns that the current one is multi-frame."""
        if self.sink is None or str(self.sink.source) != item.source or item.index == 0:
            self.finish_file()
            name = _unique_name(item.source, self.taken_names)
            self.sink = _OverlaySink(item.source, self.out_dir, name, self.video_format)
            return
        first = self.sink.flush_pending()
        if self.held is not None:
            if first is not None:
                self.held["overlay"] = first
            self._write(self.held)
            self.held = None

    def tracked(self, item, overlay_path: str, result) -> None:
        record = {
            "source": item.source,
            "frame": item.index,
            "pixel_spacing_mm": item.pixel_spacing_mm,
            "overlay": overlay_path,
            **result.to_dict(),
        }
        self.tracked_count += 1
        if self.sink is not None and self.sink.pending is not None:
            self.held = record
        else:
            self._write(record)

    def failure(self, source: str, frame: int | None, reason: str, read: bool = False) -> None:
        from tqdm import tqdm

        if read:
            self.finish_file()  # a read error ends its file: its frames' records come first
            self.unreadable.append(source)
        else:
            self.refused += 1
        where = source if frame is None else f"{source} frame {frame}"
        # tqdm.write keeps the progress bar intact around the message.
        tqdm.write(f"cathtrack predict: {where}: {reason}", file=sys.stderr)
        self._write({"source": source, "frame": frame, "error": reason})

    def finish_file(self) -> None:
        """Finalises the current file's overlay (renamed into place) and writes its held
        record; an overlay that cannot be finalised is removed, never left half written."""
        sink, self.sink = self.sink, None
        if sink is not None:
            try:
                sink.close()
            except BaseException:
                sink.discard()
                raise
        if self.held is not None:
            held, self.held = self.held, None
            self._write(held)

    def _write(self, record: dict) -> None:
        self.results.write(json.dumps(record) + "\n")  # one write per line
        self.results.flush()


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
        raise CliError(_one_line(error)) from error


def _one_line(error: BaseException | str) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _check_out(out: Path) -> None:
    """A CliError (one line) when ``out`` cannot be the output folder."""
    from cathtrack.cli import CliError

    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out}: exists and is not a folder (give a folder for the results)")


def _prepare_out(out: Path) -> None:
    """Creates the output folder; a CliError (one line) when it cannot be one."""
    from cathtrack.cli import CliError

    _check_out(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CliError(
            f"--out {out}: cannot create the folder ({error.strerror or error})"
        ) from error


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like SIGINT's KeyboardInterrupt so that the same
    clean-up (finalising the MP4 being written) runs."""


class _TermAsInterrupt:
    """Turns SIGTERM into :class:`_Terminated` while the block runs (main thread only); a
    second SIGTERM during the clean-up is ignored so that the clean-up finishes."""

    def __enter__(self):
        self.previous = None
        self.raised = False
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if not self.raised:
            self.raised = True
            raise _Terminated()

    def __exit__(self, *exc_info) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


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
    _check_out(args.out)  # before the model loads: a wrong --out fails at once
    tracker = _make_tracker(args)
    _prepare_out(args.out)

    output = _Output(args.out / RESULTS_FILE, args.out, args.video_format)
    try:
        with (
            _TermAsInterrupt(),
            output,
            # no progress bar when stderr is not a terminal: logs keep the failure lines only
            tqdm(desc="predict", unit="frame", disable=None) as progress,
        ):
            for item in iter_inputs(args.inputs):
                if isinstance(item, ReadError):
                    output.failure(item.path, None, item.reason, read=True)
                    continue
                try:  # the one guarded path of a frame: track, draw, write its overlay
                    output.start_frame(item)
                    result = tracker(item.image)
                    overlay_path = output.sink.add(draw(item.image, result), item.index)
                except Exception as error:  # noqa: BLE001 (any refusal is this frame's alone)
                    output.failure(item.source, item.index, _one_line(error))
                    continue
                output.tracked(item, overlay_path, result)
                progress.update()
    except _Terminated:
        print(
            f"cathtrack predict: terminated (SIGTERM) after {output.tracked_count} frames; "
            f"the overlays and {args.out / RESULTS_FILE} written so far are complete",
            file=sys.stderr,
        )
        return 128 + signal.SIGTERM

    print(f"tracked {output.tracked_count} frames; wrote overlays and {args.out / RESULTS_FILE}")
    if output.unreadable or output.refused:
        print(
            f"{len(output.unreadable)} input(s) unreadable or incomplete, {output.refused} "
            f"frame(s) refused (each named above and in {RESULTS_FILE})",
            file=sys.stderr,
        )
        return 1
    return 0
