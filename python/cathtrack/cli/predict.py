"""`cathtrack predict`: track images, folders, videos and DICOM files; write overlays and JSON.

Every frame goes through ``cathtrack.Tracker``. A single-frame file gets a PNG overlay; a video
or a multi-frame file (multi-page TIFF, multi-frame DICOM) gets an MP4 (H.264 with the extra
``cathtrack[video]``, else OpenCV's mp4v with a warning; see :mod:`cathtrack.video`), or a
folder of PNG frames with ``--video-format png``. ``results.jsonl`` holds one line per frame,
naming the overlay (and with ``--save-mask`` the mask PNG) that frame went to. ``--temporal``
tracks over the frames of each video or multi-frame file (stable ``track_id``s); ``--coco``
writes the predictions as a COCO file to correct in CVAT or Label Studio
(:mod:`cathtrack.preannotations`).

Failures are isolated (docs/reliability.md): a file that cannot be read (or is read only in part:
a truncated video), and a frame the tracker refuses, each get one line on stderr and one line in
``results.jsonl`` with an ``"error"`` key instead of the results, and the run goes on with the
next frame; the exit status says whether anything failed. Overlays are written to a hidden
temporary file and renamed into place when complete, so a file named ``NAME.png``/``NAME.mp4``
is never half written; SIGINT and SIGTERM stop the run after finalising the MP4 being written
(and the COCO file of the frames tracked so far).
"""

from __future__ import annotations

import argparse
import contextlib
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
  cathtrack predict run.mp4 --out out --temporal --save-mask      # track ids, mask PNGs
  cathtrack predict frames/ --out out --coco frames/predictions.json  # pre-annotations (CVAT)
  cathtrack predict frames/ --out out --coco pre.json --coco-style label-studio
  cathtrack predict run.mp4 --out out --model model.safetensors --video-format png --threads 1

threads: by default as many as there are cores not already busy (from the load average), at
least 1: on a machine shared with another job one thread is several times faster than two.

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
    parser.add_argument(
        "--save-mask",
        action="store_true",
        help="also write each frame's catheter mask as a PNG (0 / 255): NAME_mask.png, or "
        "NAME_mask/frame_NNNNN.png for a video or multi-frame file",
    )
    parser.add_argument(
        "--temporal",
        action="store_true",
        help="track over the frames of each video or multi-frame file: stable track ids, "
        "smoothed electrodes (docs/tracking.md); every file starts a new sequence",
    )
    parser.add_argument(
        "--coco",
        type=Path,
        metavar="FILE",
        help="also write the predictions as a COCO file to correct in an annotation tool",
    )
    parser.add_argument(
        "--coco-style",
        default="cvat",
        choices=("cvat", "label-studio"),
        help="what the --coco file is shaped for (default cvat; docs/runtime.md)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads per frame (default: the cores not busy with other jobs, at least 1)",
    )
    parser.add_argument(
        "--half",
        action="store_true",
        help="16-bit network when the model is a checkpoint: float16 on CUDA, bfloat16 on a "
        "CPU with native bfloat16 (refused on other CPUs); an exported file keeps its own",
    )


class _FileSink:
    """Writes the overlays (and masks) of one input file.

    A file is multi-frame when it is a video or its reader says it holds more than one frame
    (``Frame.count``, known before its first frame): its overlays go into one MP4 (or a folder
    of PNG frames), its masks into a folder; a single-frame file gets ``NAME.png`` (and
    ``NAME_mask.png``). Every file is written under a hidden temporary name and renamed into
    place when complete (a PNG at once, an MP4 at :meth:`close`). Overlays of another size than
    the video's first frame (a multi-page TIFF with pages of different sizes) are scaled to fit
    and padded, never dropped.
    """

    def __init__(self, item, out_dir: Path, name: str, video_format: str) -> None:
        from cathtrack.io import detect_kind

        self.source = Path(item.source)
        self.out_dir = out_dir
        self.name = name
        self.video_format = video_format
        self.is_video = detect_kind(self.source) == "video"
        self.multi_frame = self.is_video or (item.count or 1) > 1
        self.writer = None
        self.video_path: Path | None = None
        self.video_temporary: Path | None = None
        self.video_size: tuple[int, int] | None = None

    def add(self, overlay, index: int) -> str:
        """Writes the overlay of frame ``index``; the path it went to."""
        if not self.multi_frame:
            path = self.out_dir / f"{self.name}.png"
            _write_png(path, overlay)
            return str(path)
        if self.video_format == "png":
            folder = self.out_dir / self.name
            folder.mkdir(exist_ok=True)
            path = folder / f"frame_{index:05d}.png"
            _write_png(path, overlay)
            return str(path)
        return self._write_video_frame(overlay)

    def add_mask(self, binary, index: int) -> str:
        """Writes a frame's catheter mask as a 0/255 PNG; the path it went to."""
        import numpy as np

        if self.multi_frame:
            folder = self.out_dir / f"{self.name}_mask"
            folder.mkdir(exist_ok=True)
            path = folder / f"frame_{index:05d}.png"
        else:
            path = self.out_dir / f"{self.name}_mask.png"
        _write_png(path, binary.astype(np.uint8) * np.uint8(255))
        return str(path)

    def close(self) -> None:
        """Finalises the MP4 and moves it into place."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()  # writes the MP4's index: the file is complete only now
            os.replace(self.video_temporary, self.video_path)

    def discard(self) -> None:
        """Drops an unfinished MP4 (its temporary file), for errors while closing."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            try:
                writer.close()
            except OSError:
                pass
        if self.video_temporary is not None:
            self.video_temporary.unlink(missing_ok=True)

    def _write_video_frame(self, overlay) -> str:
        from cathtrack.video import Mp4Writer, VideoWriteError

        path = self.out_dir / f"{self.name}.mp4"
        if self.writer is None:
            height, width = overlay.shape[:2]
            # FFmpeg picks the container from the suffix: the temporary name ends in .mp4 too.
            temporary = self.out_dir / f".{self.name}.{uuid.uuid4().hex[:12]}.partial.mp4"
            self.video_temporary = temporary
            try:
                self.writer = Mp4Writer(temporary, (width, height), self._fps())
            except VideoWriteError as error:
                temporary.unlink(missing_ok=True)
                raise OSError(f"{error}; try --video-format png") from None
            self.video_path = path
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
        raise OSError(f"cannot encode {path} as PNG")
    write_bytes_atomic(path, encoded.tobytes())


def _fit(image, size: tuple[int, int]):
    """``image`` scaled to fit (width, height) ``size`` and padded with black; as is when it
    already has that size (a video has one frame size)."""
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
    """results.jsonl, the overlays, masks and COCO file of one run, in input order.

    Failures get one stderr line and one record with an ``"error"`` key. Leaving the ``with``
    block (normally, on an error or on SIGINT/SIGTERM) finalises the current overlay file and
    writes the COCO file of the frames tracked so far.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.results_path = args.out / RESULTS_FILE
        self.out_dir = args.out
        self.video_format = args.video_format
        self.save_mask = args.save_mask
        self.inputs = [path.resolve() for path in args.inputs]
        self.sink: _FileSink | None = None
        self.taken_names: set[str] = set()
        self.unreadable: list[str] = []  # inputs that could not be read (or only in part)
        self.refused = 0  # frames read but not tracked
        self.tracked_count = 0
        self.coco_path = args.coco
        self.coco = None
        if args.coco is not None:
            from cathtrack.preannotations import PreannotationWriter

            self.coco = PreannotationWriter(args.coco_style)

    def __enter__(self) -> _Output:
        self.results = open(self.results_path, "w")  # noqa: SIM115 (closed in __exit__)
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.finish_file()
        finally:
            self.results.close()
            if self.coco is not None:
                self.coco.write(self.coco_path)

    def start_frame(self, item) -> bool:
        """Opens the sink of a new file when ``item`` starts one; whether it did."""
        if self.sink is not None and str(self.sink.source) == item.source and item.index > 0:
            return False
        self.finish_file()
        name = _unique_name(item.source, self.taken_names)
        self.sink = _FileSink(item, self.out_dir, name, self.video_format)
        return True

    def write_frame(self, item, result, overlay) -> dict:
        """Writes a tracked frame's overlay (and mask); its record's file entries."""
        files = {"overlay": self.sink.add(overlay, item.index)}
        if self.save_mask:
            files["mask_png"] = self.sink.add_mask(result.binary, item.index)
        return files

    def tracked(self, item, files: dict, result) -> None:
        record = {
            "source": item.source,
            "frame": item.index,
            "pixel_spacing_mm": item.pixel_spacing_mm,
            **files,
            **result.to_dict(),
        }
        self.tracked_count += 1
        self._write(record)
        if self.coco is not None:
            self.coco.add(self._coco_name(item), result)

    def _coco_name(self, item) -> str:
        """The frame's image name in the COCO file: its path relative to the input folder it
        was found in (its file name when given directly); ``<that without suffix>/
        frame_NNNNNN.png`` for a frame of a video or multi-frame file."""
        source = Path(item.source).resolve()
        name = source.name
        for root in self.inputs:
            if root.is_dir() and source.is_relative_to(root):
                name = source.relative_to(root).as_posix()
                break
        if self.sink is not None and self.sink.multi_frame:
            return f"{Path(name).with_suffix('').as_posix()}/frame_{item.index:06d}.png"
        return name

    def failure(self, source: str, frame: int | None, reason: str, read: bool = False) -> None:
        from tqdm import tqdm

        if read:
            self.finish_file()  # a read error ends its file
            self.unreadable.append(source)
        else:
            self.refused += 1
        where = source if frame is None else f"{source} frame {frame}"
        # tqdm.write keeps the progress bar intact around the message.
        tqdm.write(f"cathtrack predict: {where}: {reason}", file=sys.stderr)
        self._write({"source": source, "frame": frame, "error": reason})

    def finish_file(self) -> None:
        """Finalises the current file's overlay (renamed into place); an overlay that cannot
        be finalised is removed, never left half written."""
        sink, self.sink = self.sink, None
        if sink is not None:
            try:
                sink.close()
            except BaseException:
                sink.discard()
                raise

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


def default_threads() -> int:
    """Threads for one tracker on a machine that may be shared: the cores this process may
    use minus those busy with other work (the whole part of the 1-minute load average), at
    least 1.

    OpenMP threads wait for each other at every parallel region, so a thread that loses its
    core to another job stalls the others: with a training run on both cores of a 2-core
    machine, one thread ran several times faster than two (docs/runtime.md, "Threads")."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:  # no load average on this system
        busy = 0.0
    return max(1, min(cores, cores - int(busy)))  # a fraction of a busy core is not a core


def _make_tracker(args: argparse.Namespace):
    from cathtrack.cli import CliError
    from cathtrack.tracker import Tracker

    try:
        return Tracker(
            args.model,
            device=args.device,
            backend=args.backend,
            score_threshold=args.score_threshold,
            threads=args.threads,
            half=args.half,
            temporal=args.temporal,
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


class OneLineWarnings:
    """Shows warnings while the block runs as one line each, ``cathtrack VERB: warning: ...``
    (e.g. the fallback to the mp4v codec), not Python's two lines with a source line."""

    def __init__(self, verb: str = "predict") -> None:
        self.verb = verb

    def __enter__(self):
        import warnings

        self.previous = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            from tqdm import tqdm

            text = " ".join(str(message).split())
            tqdm.write(f"cathtrack {self.verb}: warning: {text}", file=sys.stderr)

        warnings.showwarning = show
        return self

    def __exit__(self, *exc_info) -> None:
        import warnings

        warnings.showwarning = self.previous


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like SIGINT's KeyboardInterrupt so that the same
    clean-up (finalising the MP4 being written) runs."""


class _TermAsInterrupt:
    """Turns SIGTERM into :class:`_Terminated` and SIGINT into KeyboardInterrupt while the block
    runs (main thread only); a second signal during the clean-up is ignored so that the
    clean-up finishes. Inside :meth:`deferred` a signal waits until the block ends, so that a
    frame's overlay and its line in results.jsonl are written both or neither."""

    def __enter__(self):
        self.previous = {}
        self.raised = False
        self.deferring = False
        self.pending: int | None = None
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.deferring:
            self.pending = self.pending or signum
        elif not self.raised:
            self._raise(signum)

    def _raise(self, signum: int) -> None:
        self.raised = True
        raise _Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    @contextlib.contextmanager
    def deferred(self):
        self.deferring = True
        try:
            yield
        finally:  # also when the block failed: the signal is not lost with its frame
            self.deferring = False
            if self.pending is not None and not self.raised:
                self._raise(self.pending)

    def __exit__(self, *exc_info) -> None:
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)


def _check_arguments(args: argparse.Namespace) -> None:
    """A CliError (one line) for arguments that cannot work, before the model loads."""
    from cathtrack.cli import CliError

    missing = [str(path) for path in args.inputs if not path.exists()]
    if missing:
        raise CliError(f"no such file or folder: {', '.join(missing)}")
    if not 0.0 <= args.score_threshold <= 1.0:
        raise CliError(f"--score-threshold must be in [0, 1], got {args.score_threshold}")
    if args.threads is None:
        args.threads = default_threads()
    elif args.threads < 1:
        raise CliError(f"--threads must be >= 1, got {args.threads}")
    if args.coco is not None and args.coco.is_dir():
        raise CliError(f"--coco {args.coco}: is a folder (give a .json file name)")
    if args.half and args.model is not None and args.model.suffix in (".pt2", ".ts"):
        print(
            f"cathtrack predict: --half has no effect on {args.model.name}: an exported model "
            "keeps the precision it was exported with (cathtrack export --half)",
            file=sys.stderr,
        )
    _check_out(args.out)  # before the model loads: a wrong --out fails at once


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cathtrack.io import ReadError, iter_inputs

    _check_arguments(args)
    tracker = _make_tracker(args)
    _prepare_out(args.out)
    if args.coco is not None:
        args.coco.parent.mkdir(parents=True, exist_ok=True)

    output = _Output(args)
    try:
        with (
            _TermAsInterrupt() as signals,
            OneLineWarnings(),
            output,
            # no progress bar when stderr is not a terminal: logs keep the failure lines only
            tqdm(desc="predict", unit="frame", disable=None) as progress,
        ):
            for item in iter_inputs(args.inputs):
                if isinstance(item, ReadError):
                    output.failure(item.path, None, item.reason, read=True)
                    continue
                try:  # the one guarded path of a frame: track, draw, write its files
                    if output.start_frame(item):
                        tracker.reset()  # each file is its own sequence (--temporal)
                    result = tracker(item.image)
                    overlay = result.plot()
                    with signals.deferred():
                        files = output.write_frame(item, result, overlay)
                        output.tracked(item, files, result)
                except Exception as error:  # noqa: BLE001 (any refusal is this frame's alone)
                    output.failure(item.source, item.index, _one_line(error))
                    continue
                progress.update()
    except _Terminated:
        print(
            f"cathtrack predict: terminated (SIGTERM) after {output.tracked_count} frames; "
            f"the overlays and {args.out / RESULTS_FILE} written so far are complete",
            file=sys.stderr,
        )
        return 128 + signal.SIGTERM

    wrote = f"wrote overlays{', masks' if args.save_mask else ''} and {args.out / RESULTS_FILE}"
    if args.coco is not None:
        wrote += f"; pre-annotations ({args.coco_style}) in {args.coco}"
    print(f"tracked {output.tracked_count} frames; {wrote}")
    if output.unreadable or output.refused:
        print(
            f"{len(output.unreadable)} input(s) unreadable or incomplete, {output.refused} "
            f"frame(s) refused (each named above and in {RESULTS_FILE})",
            file=sys.stderr,
        )
        return 1
    return 0
