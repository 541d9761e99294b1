"""Writing overlay videos as MP4 that web browsers play.

Browsers play MP4 with H.264 video in the yuv420p pixel format. OpenCV's own FFmpeg build
writes only MPEG-4 Part 2 (``mp4v``), which desktop players open but browsers do not. With the
optional extra ``cathtrack[video]`` (the ``imageio-ffmpeg`` package, which ships an FFmpeg
executable) frames are piped to that FFmpeg and encoded with libx264; without it the writer
falls back to OpenCV's ``mp4v`` and warns once per process, naming the extra.

The FFmpeg process runs in its own process group, so a Ctrl-C in the terminal reaches only
cathtrack, which then closes the file properly (:meth:`Mp4Writer.close`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

VIDEO_EXTRA = "video"
H264_PARAMS = [
    "-preset", "veryfast",  # overlays are flat graphics: fast presets lose little
    "-crf", "20",
    "-threads", "1",  # leave the cores to tracking
    "-movflags", "+faststart",  # index first: a browser starts playing before the download ends
]  # fmt: skip
_warned = False


class VideoWriteError(OSError):
    """A video that cannot be written (no encoder, FFmpeg failed); one line."""


def h264_available() -> bool:
    """Whether the packaged FFmpeg of ``cathtrack[video]`` is installed."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def _warn_fallback() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            f"writing MP4 with OpenCV's mp4v codec, which web browsers do not play; install "
            f"pip install 'cathtrack[{VIDEO_EXTRA}]' for H.264",
            stacklevel=3,
        )


class Mp4Writer:
    """Writes (H, W, 3) uint8 BGR frames of one size to an MP4 file.

    Args:
        path: the file (its suffix must be .mp4: FFmpeg picks the container from it).
        size: (width, height) of every frame; H.264 needs even sides, so an odd side is padded
            with one black row or column.
        fps: frames per second.
        codec: "h264" (needs ``cathtrack[video]``), "mp4v" (OpenCV), or "auto": H.264 when
            available, else mp4v with a warning.

    Raises:
        VideoWriteError: the encoder cannot be started.
    """

    def __init__(
        self, path: str | Path, size: tuple[int, int], fps: float, codec: str = "auto"
    ) -> None:
        if codec not in ("auto", "h264", "mp4v"):
            raise ValueError(f"codec must be 'auto', 'h264' or 'mp4v', got {codec!r}")
        if codec == "auto":
            codec = "h264" if h264_available() else "mp4v"
            if codec == "mp4v":
                _warn_fallback()
        self.path = Path(path)
        self.size = (int(size[0]), int(size[1]))
        self.codec = codec
        self.frames = 0
        self._cv2_writer = None
        self._pipe = None
        if codec == "h264":
            self._open_h264(fps)
        else:
            self._open_mp4v(fps)

    def _open_h264(self, fps: float) -> None:
        if not h264_available():
            raise VideoWriteError(
                f"H.264 needs the packaged FFmpeg: pip install 'cathtrack[{VIDEO_EXTRA}]'"
            )
        import imageio_ffmpeg

        width, height = self.size
        self._padded = (width + width % 2, height + height % 2)
        self._pipe = imageio_ffmpeg.write_frames(
            str(self.path),
            self._padded,
            pix_fmt_in="bgr24",
            pix_fmt_out="yuv420p",
            fps=float(fps),
            codec="libx264",
            quality=None,
            macro_block_size=1,  # sides already even: no resizing by imageio-ffmpeg
            ffmpeg_log_level="error",
            output_params=H264_PARAMS,
        )
        try:
            self._pipe.send(None)  # starts FFmpeg
        except OSError as error:
            raise VideoWriteError(f"cannot start FFmpeg for {self.path}: {error}") from error

    def _open_mp4v(self, fps: float) -> None:
        import cv2

        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), fps, self.size)
        if not writer.isOpened():
            writer.release()
            self.path.unlink(missing_ok=True)
            raise VideoWriteError(
                f"cannot write {self.path} (no MP4 encoder for {self.size[0]}x{self.size[1]} in "
                "this OpenCV build)"
            )
        self._cv2_writer = writer

    def write(self, frame: np.ndarray) -> None:
        """Appends one frame of the writer's size."""
        if frame.shape[:2] != (self.size[1], self.size[0]):
            raise ValueError(
                f"frame is {frame.shape[1]}x{frame.shape[0]}, the video {self.size[0]}x"
                f"{self.size[1]}"
            )
        if self._pipe is not None:
            width, height = self._padded
            if (width, height) != self.size:
                padded = np.zeros((height, width, 3), np.uint8)
                padded[: frame.shape[0], : frame.shape[1]] = frame
                frame = padded
            try:
                self._pipe.send(np.ascontiguousarray(frame, np.uint8))
            except OSError as error:
                raise VideoWriteError(
                    f"FFmpeg stopped while writing {self.path}: {' '.join(str(error).split())}"
                ) from error
        else:
            self._cv2_writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        """Finishes the file (waits for FFmpeg to write its index); idempotent."""
        if self._pipe is not None:
            pipe, self._pipe = self._pipe, None
            pipe.close()
        if self._cv2_writer is not None:
            writer, self._cv2_writer = self._cv2_writer, None
            writer.release()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
