"""``cathtrack.Tracker``: one call per frame, numpy in, :class:`Result` out.

Three backends give the same answer (electrodes within 0.1 px; tests/test_tracker.py and
tests/test_onnx.py check it):

- ``"native"`` (default): the C++ engine (``cathtrack._native.Engine``, src/cpp/runtime) runs
  normalisation, resize, the forward pass of an exported ``.pt2``/``.ts`` model, decoding and
  post-processing with the GIL released. A checkpoint (``.safetensors``) is exported on first use
  to the cache of :func:`cathtrack.export.cached_export` (``int8=True``: quantised to int8 first,
  :mod:`cathtrack.quantize`).
- ``"python"``: :mod:`cathtrack.pipeline` with eager torch (the reference; slower).
- ``"onnxruntime"``: an exported ``.onnx`` network run by onnxruntime
  (:mod:`cathtrack.onnx_backend`, the ``onnx`` extra), its outputs decoded as the reference
  decodes them (the native post-processing core).

Coordinates are (x, y) pixels of the input frame, pixel centres at integers, whatever size the
model runs at.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cathtrack.catheters import UNKNOWN_TYPE, type_name
from cathtrack.settings import DecodeSettings
from cathtrack.tracking import CatheterDetection, SequenceTracker, TrackingParams

__all__ = ["Tracker", "Result", "Catheter", "DecodeSettings", "draw", "default_model_path"]

# Shipped default weights in order of preference: the paper's ResNet34, else the lite model (an
# installation may leave out the larger file; see models/MODEL_CARD.md).
DEFAULT_MODEL_FILES = ("cathtrack_resnet34.safetensors", "cathtrack_lite.safetensors")
_NATIVE_DTYPES = (np.uint8, np.uint16, np.float32)
_EXPORTED_SUFFIXES = (".pt2", ".ts")
BACKENDS = ("native", "python", "onnxruntime")


@dataclass(frozen=True, eq=False)  # arrays inside: compare fields explicitly
class Catheter:
    """One catheter in a frame.

    Attributes:
        id: index of this catheter in ``Result.catheters`` (per frame, not a track id).
        type: a name of :data:`cathtrack.catheters.CATHETER_TYPES`, or ``"unknown"`` when fewer than
            two electrodes lie on it or no spacing template matches.
        type_score: pattern-match score in [0, 1] (0 for unknown).
        centerline: (M, 2) float32 x, y pixels, distal tip first.
        electrodes: (K,) int64 indices into ``Result.electrodes``, distal first.
        tip: (x, y) pixels of the distal end (``centerline[0]``).
        tip_direction: (dx, dy) unit vector pointing from the shaft towards the tip (measured
            over the last ``tip_lookback`` model pixels); (0, 0) for a degenerate centerline.
        track_id: stable id over the frames of a sequence (``Tracker(temporal=True)``); -1 when
            not tracked or not confirmed yet.
    """

    id: int
    type: str
    type_score: float
    centerline: np.ndarray
    electrodes: np.ndarray
    tip: tuple[float, float]
    tip_direction: tuple[float, float]
    track_id: int = -1

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (lists and floats)."""
        return {
            "id": self.id,
            "type": self.type,
            "type_score": float(self.type_score),
            "centerline": self.centerline.astype(float).tolist(),
            "electrodes": [int(i) for i in self.electrodes],
            "tip": [float(v) for v in self.tip],
            "tip_direction": [float(v) for v in self.tip_direction],
            "track_id": int(self.track_id),
        }


@dataclass(frozen=True, eq=False)
class Result:
    """What the tracker found in one frame (docs/design.md 4.2), in the frame's pixels.

    Attributes:
        mask: (H, W) uint8 catheter probability * 255 (rounded).
        electrodes: (N, 2) float32 x, y electrode centres (sub-pixel), best score first.
        scores: (N,) float32 heatmap scores in (0, 1).
        sizes: (N, 2) float32 electrode box width, height in pixels.
        catheters: the catheters, see :class:`Catheter`.
        timings: milliseconds spent in ``preprocess``, ``inference``, ``postprocess`` and
            ``total``.
        mask_threshold: the probability above which :attr:`binary` counts a pixel as catheter.
        electrode_track_ids: (N,) int64 stable electrode ids over a sequence, -1 for an electrode
            whose track is not confirmed (``Tracker(temporal=True)``; None otherwise). Electrodes
            with an id are then at their Kalman-smoothed positions (cathtrack.tracking).
        frame: the frame the tracker was given (a reference, not a copy: a caller that reuses
            its buffer should pass the frame to :meth:`plot` itself); None for a result made
            by hand. Used by :meth:`plot` and :meth:`save`, never written to JSON.

    Example::

        result = tracker(frame)
        overlay = result.plot()          # (H, W, 3) uint8 BGR, as cathtrack.draw
        result.save("overlay.png")       # the same picture, written atomically
        line = result.to_json()          # one JSON object (add include_mask=True for the mask)
    """

    mask: np.ndarray
    electrodes: np.ndarray
    scores: np.ndarray
    sizes: np.ndarray
    catheters: list[Catheter] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    mask_threshold: float = 0.5
    electrode_track_ids: np.ndarray | None = None
    frame: np.ndarray | None = field(default=None, repr=False)

    @property
    def binary(self) -> np.ndarray:
        """(H, W) bool catheter mask: probability > ``mask_threshold`` (to 1/255)."""
        return self.mask > np.float32(self.mask_threshold * 255.0)

    def to_dict(self, include_mask: bool = False) -> dict[str, Any]:
        """JSON-serialisable dict. ``include_mask`` adds the binary mask as COCO RLE
        (``{"size": [H, W], "counts": str}``, decodable with ``pycocotools.mask.decode``)."""
        out: dict[str, Any] = {
            "electrodes": self.electrodes.astype(float).tolist(),
            "scores": self.scores.astype(float).tolist(),
            "sizes": self.sizes.astype(float).tolist(),
            "catheters": [catheter.to_dict() for catheter in self.catheters],
            "timings": {name: float(ms) for name, ms in self.timings.items()},
            "image_size": [int(self.mask.shape[1]), int(self.mask.shape[0])],
        }
        if self.electrode_track_ids is not None:
            out["electrode_track_ids"] = [int(i) for i in self.electrode_track_ids]
        if include_mask:
            from pycocotools import mask as rle

            encoded = rle.encode(np.asfortranarray(self.binary.astype(np.uint8)))
            out["mask"] = {"size": list(encoded["size"]), "counts": encoded["counts"].decode()}
        return out

    def to_json(self, include_mask: bool = False, **dumps: Any) -> str:
        """:meth:`to_dict` as a JSON string; ``dumps`` go to ``json.dumps`` (e.g. ``indent=2``)."""
        return json.dumps(self.to_dict(include_mask=include_mask), **dumps)

    def plot(
        self, frame: np.ndarray | None = None, *, scale: int = 1, legend: bool = True
    ) -> np.ndarray:
        """The overlay of this result (see :func:`draw`) on ``frame``, by default the frame it
        came from.

        Returns:
            (H*scale, W*scale, 3) uint8 BGR image.

        Raises:
            ValueError: no frame given and none kept (a result not made by a Tracker), or a
                frame of another size than the result's.
        """
        frame = self.frame if frame is None else frame
        if frame is None:
            raise ValueError("this result keeps no frame: pass the frame, result.plot(frame)")
        if tuple(np.shape(frame)[:2]) != self.mask.shape:
            raise ValueError(
                f"frame is {np.shape(frame)[1]}x{np.shape(frame)[0]} but the result is for "
                f"{self.mask.shape[1]}x{self.mask.shape[0]}"
            )
        return draw(frame, self, scale=scale, legend=legend)

    def save(self, path: str | Path, frame: np.ndarray | None = None, *, scale: int = 1) -> Path:
        """Writes :meth:`plot` to ``path`` (format from the suffix: .png, .jpg, ...) through a
        temporary file, so ``path`` is never half written; returns ``path``.

        Raises:
            ValueError: as :meth:`plot`, or a suffix OpenCV cannot encode.
        """
        import cv2

        from cathtrack.checkpoint import write_bytes_atomic

        path = Path(path)
        ok, encoded = False, None
        try:
            ok, encoded = cv2.imencode(path.suffix or ".png", self.plot(frame, scale=scale))
        except cv2.error:
            pass
        if not ok:
            raise ValueError(f"{path}: cannot write an image with suffix {path.suffix!r}")
        write_bytes_atomic(path, encoded.tobytes())
        return path


def default_model_path() -> Path:
    """The shipped default weights: ``cathtrack/models/`` of an installed wheel, else ``models/``
    of the source tree.

    Raises:
        FileNotFoundError: no default weights are shipped with this version.
    """
    package_dir = Path(__file__).resolve().parent
    candidates = [package_dir / "models", package_dir.parents[1] / "models"]
    for name in DEFAULT_MODEL_FILES:
        for folder in candidates:
            if (folder / name).is_file():
                return folder / name
    raise FileNotFoundError(
        f"no default model weights are shipped with this version of cathtrack yet (looked for "
        f"{' or '.join(DEFAULT_MODEL_FILES)} in {', '.join(str(c) for c in candidates)}); pass "
        "model=PATH: a .safetensors checkpoint or an exported .pt2/.ts file"
    )


class Tracker:
    """Finds electrodes, catheter masks, centerlines and catheter types in fluoroscopy frames.

    Each call looks at one frame on its own: ``track_id``s stay -1 and electrodes are not
    smoothed, unless the tracker is built with ``temporal=True``, which follows catheters and
    electrodes over consecutive calls (then call :meth:`reset` between sequences).

    Args:
        model: an exported ``.pt2``/``.ts`` file (used as is), a checkpoint (``.safetensors``,
            its ``.json`` or a checkpoint folder; exported once to the cache for the native
            backend), or None for the shipped default weights.
        device: "auto" (CUDA when available), "cpu" or "cuda".
        backend: "native" (C++ engine), "python" (reference pipeline, eager torch) or
            "onnxruntime" (an ``.onnx`` file, or a checkpoint exported to one; CPU threads as
            ``threads``, CUDA with the onnxruntime-gpu wheel).
        settings: decoding settings (:class:`cathtrack.settings.DecodeSettings`; None: its
            defaults).
        **decode: single decoding settings by name, applied over ``settings``
            (``score_threshold=0.5``, ``max_peaks``, ``mask_threshold``,
            ``min_centerline_length``, ``max_assign_distance``, ``spacing_tolerance``,
            ``tip_lookback``; see :class:`~cathtrack.settings.DecodeSettings`).
        threads: intra-op CPU threads during a call (0: torch's current setting).
        export_format: format a checkpoint is exported to for the native backend ("pt2", or "ts").
        half: 16-bit floats when a checkpoint is exported: float16 on CUDA, bfloat16 on a CPU
            with native bfloat16 (:func:`cathtrack.device.half_dtype`; float16 for
            onnxruntime; an exported file keeps its own precision).
        int8: native backend on the CPU: a checkpoint is exported as an int8 ``.pt2``
            (:mod:`cathtrack.quantize`, calibrated on synthetic frames; for your own frames
            export with ``cathtrack export --int8 --calibration`` and pass the file).
        temporal: track over consecutive calls (:class:`cathtrack.tracking.SequenceTracker`):
            stable ``track_id``s and Kalman-smoothed electrodes; call :meth:`reset` between
            sequences. False (the default): every frame is decoded on its own.
        tracking: parameters of the temporal tracker (None: the defaults).

    Raises:
        FileNotFoundError: missing model file (or no shipped default for model=None).
        ValueError: bad arguments, or a model file the runtime refuses (the message names it).

    Example::

        tracker = cathtrack.Tracker("model.safetensors")
        result = tracker(frame)          # frame: (H, W) uint8/uint16/float32
        result.electrodes, result.catheters[0].tip
        tracker.configure(score_threshold=0.5)   # or Tracker(..., score_threshold=0.5)

    Attributes:
        settings: the decoding settings in use (a frozen :class:`DecodeSettings`).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "auto",
        backend: str = "native",
        *,
        settings: DecodeSettings | None = None,
        threads: int = 0,
        export_format: str = "pt2",
        half: bool = False,
        int8: bool = False,
        temporal: bool = False,
        tracking: TrackingParams | None = None,
        **decode: float,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if export_format not in ("pt2", "ts"):
            raise ValueError(f"export_format must be 'pt2' or 'ts', got {export_format!r}")
        if int8 and (backend != "native" or export_format != "pt2" or half):
            raise ValueError("int8 runs in the native backend as a pt2 export, without half")
        from cathtrack.device import pick_device

        self.backend = backend
        if backend == "onnxruntime":
            from cathtrack.onnx_backend import pick_onnx_device

            self.device = pick_onnx_device(device)
        else:
            self.device = pick_device(device)
        self.settings = (settings or DecodeSettings()).replace(**decode)
        source = Path(model) if model is not None else default_model_path()
        if not source.exists():
            raise FileNotFoundError(f"{source}: model not found")
        if int8 and self.device != "cpu":
            raise ValueError("int8 runs on the CPU: pass device='cpu'")
        if source.suffix == ".onnx" and backend != "onnxruntime":
            raise ValueError(f"{source}: an ONNX file runs with backend='onnxruntime'")
        if backend == "native":
            from cathtrack.export import cached_export, check_model_file

            if source.suffix not in _EXPORTED_SUFFIXES:
                source = cached_export(source, export_format, self.device, half, int8)
            check_model_file(source)  # before the engine opens it: a .pt2 of another torch
            from cathtrack import _native
            from cathtrack.postprocess import spacing_templates

            templates = [(index, list(spacing)) for index, spacing in spacing_templates()]
            try:
                self._engine = _native.Engine(
                    str(source), device=self.device, threads=int(threads),
                    templates=templates, settings=self.settings.to_native(),
                )  # fmt: skip
            except _native.ModelFileError as error:  # libtorch's reasons span several lines
                raise _native.ModelFileError(" ".join(str(error).split())) from None
            self.metadata: dict[str, str] = dict(self._engine.metadata())
            self.input_size = int(self._engine.input_size)
        elif backend == "onnxruntime":
            from cathtrack.export import cached_export
            from cathtrack.onnx_backend import OnnxNetwork

            if source.suffix != ".onnx":
                source = cached_export(source, "onnx", "cpu", half)
            network = OnnxNetwork(source, self.device, int(threads))
            self._reference = _ReferencePipeline(source, "cpu", half, 0, network=network)
            self.metadata = self._reference.metadata
            self.input_size = self._reference.input_size
        else:
            self._reference = _ReferencePipeline(source, self.device, half, int(threads))
            self.metadata = self._reference.metadata
            self.input_size = self._reference.input_size
        self.model_path = source
        self.sequence = SequenceTracker(tracking) if temporal else None

    def reset(self) -> None:
        """Forgets the tracks of the temporal mode (a new sequence starts); no-op otherwise."""
        if self.sequence is not None:
            self.sequence.reset()

    def configure(self, settings: DecodeSettings | None = None, **changes: float) -> None:
        """Changes decoding settings for the next frames without reloading the model; tracks of
        the temporal mode are kept.

        Args:
            settings: new settings as a whole (None: keep the current ones).
            **changes: single fields by name, applied over ``settings`` (see
                :class:`~cathtrack.settings.DecodeSettings`).

        Raises:
            ValueError: an unknown name or a value the engine refuses (nothing changes then).
            TypeError: a value that is not a number (nothing changes then).
        """
        updated = (settings or self.settings).replace(**changes)
        if self.backend == "native":
            self._engine.set_settings(updated.to_native())  # checks the values, atomically
        else:
            updated.check()  # the engine's own check: the same refusals
        self.settings = updated

    def __call__(self, frame: np.ndarray) -> Result:
        """Tracks one frame.

        Args:
            frame: (H, W) uint8, uint16 or float32 grey frame (other integer/float dtypes and
                (H, W, 3|4) BGR(A) frames are normalised in Python first, with the same rule).

        Raises:
            TypeError: unsupported dtype (bool, complex, object, 64-bit integers).
            ValueError: empty frame or a shape other than (H, W) / (H, W, 1|3|4).
        """
        given = frame
        frame = _as_frame(frame)
        if self.backend != "native":
            result = self._reference(frame, self.settings)
        else:
            result = self._native(frame)
        if self.sequence is not None:
            result = _track(self.sequence, result)
        return dataclasses.replace(result, frame=given)  # kept for result.plot()

    def _native(self, frame: np.ndarray) -> Result:
        raw = self._engine(frame)
        return Result(
            mask=raw["mask"],
            electrodes=raw["electrodes"],
            scores=raw["scores"],
            sizes=raw["sizes"],
            catheters=[
                Catheter(
                    id=i,
                    type=type_name(c["type"]),
                    type_score=float(c["type_score"]),
                    centerline=c["centerline"],
                    electrodes=c["electrodes"],
                    tip=tuple(c["tip"]),
                    tip_direction=tuple(c["tip_direction"]),
                )
                for i, c in enumerate(raw["catheters"])
            ],
            timings=dict(raw["timings"]),
            mask_threshold=self.settings.mask_threshold,
        )

    def run(self, frames: Iterable[np.ndarray]) -> Iterator[Result]:
        """Tracks the frames of an iterable (a list, a video reader, ...) one by one, lazily."""
        for frame in frames:
            yield self(frame)

    def __repr__(self) -> str:
        return (
            f"Tracker(model={str(self.model_path)!r}, device={self.device!r}, "
            f"backend={self.backend!r}, input_size={self.input_size})"
        )


def _track(sequence: SequenceTracker, result: Result) -> Result:
    """The result with track ids and smoothed electrode positions; timings get ``tracking``."""
    start = time.perf_counter()
    tracks = sequence.update(
        result.electrodes,
        [CatheterDetection(c.centerline, c.type, c.electrodes) for c in result.catheters],
    )
    catheters = [
        dataclasses.replace(c, track_id=int(i))
        for c, i in zip(result.catheters, tracks.catheter_track_ids, strict=True)
    ]
    timings = dict(result.timings)
    timings["tracking"] = 1e3 * (time.perf_counter() - start)
    timings["total"] = timings.get("total", 0.0) + timings["tracking"]
    return dataclasses.replace(
        result,
        electrodes=tracks.electrodes,
        catheters=catheters,
        timings=timings,
        electrode_track_ids=tracks.electrode_track_ids,
    )


def _as_frame(frame: Any) -> np.ndarray:
    """A (H, W) uint8/uint16/float32 array the engine takes as is; anything else goes through
    normalize_frame (exact: the rule is idempotent, so the engine's normalisation keeps it)."""
    from cathtrack.data.normalize import normalize_frame

    if not isinstance(frame, np.ndarray):
        raise TypeError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.ndim == 2 and frame.size and np.dtype(frame.dtype).type in _NATIVE_DTYPES:
        return frame
    return normalize_frame(frame)


class _ReferencePipeline:
    """The python backend: cathtrack.pipeline step by step, timed like the native engine."""

    def __init__(
        self, source: Path, device: str, half: bool, threads: int, network: Any = None
    ) -> None:
        import torch

        self.device = device
        self.threads = threads
        if network is not None:  # an ONNX network: float32 in and out whatever its precision
            self.forward, self.dtype = network, torch.float32
            self.metadata = network.metadata
            self.input_size = int(self.metadata["input_size"])
            return
        from cathtrack.device import half_dtype

        self.dtype = half_dtype(device) if half else torch.float32
        if source.suffix in _EXPORTED_SUFFIXES:
            from cathtrack.export import check_model_file

            self.metadata = check_model_file(source)  # a .pt2 of another torch is refused
            self.input_size = int(self.metadata["input_size"])
            if source.suffix == ".ts":
                self.forward = torch.jit.load(str(source), map_location=device).eval()
            else:
                self.forward = torch._inductor.aoti_load_package(str(source))
            self.dtype = getattr(torch, self.metadata["dtype"])
        else:
            from cathtrack.checkpoint import load_model

            network, document = load_model(source, device)
            self.forward = network.to(self.dtype)
            self.input_size = int(document["input_size"])
            self.metadata = {
                "input_size": str(self.input_size),
                "model_config": json.dumps(document["model"], sort_keys=True),
            }

    def __call__(self, frame: np.ndarray, settings: DecodeSettings) -> Result:
        import torch

        from cathtrack import pipeline
        from cathtrack.coordinates import input_to_frame_scale

        previous_threads = torch.get_num_threads()
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        try:
            start = time.perf_counter()
            image = pipeline.preprocess(frame, self.input_size)
            batch = torch.from_numpy(image)[None, None].to(self.device, self.dtype)
            preprocessed = time.perf_counter()
            with torch.inference_mode():
                segmentation, heatmap, size = self.forward(batch)
            if self.device == "cuda":
                torch.cuda.synchronize()
            inferred = time.perf_counter()
            model_grid = pipeline.decode(segmentation[0], heatmap[0], size[0], settings)
            on_frame = pipeline.to_frame(model_grid, frame.shape[:2], self.input_size)
            scale = input_to_frame_scale(frame.shape[:2], self.input_size)
            catheters = []
            for i, ((catheter_type, group), score, line) in enumerate(
                zip(
                    model_grid.catheters,
                    model_grid.type_scores,
                    model_grid.centerlines,
                    strict=True,
                )
            ):
                catheters.append(
                    Catheter(
                        id=i,
                        type=catheter_type,
                        type_score=float(score),
                        centerline=on_frame.centerlines[i],
                        electrodes=np.asarray(group, np.int64),
                        tip=tuple(float(v) for v in on_frame.centerlines[i][0]),
                        tip_direction=_tip_direction(line, settings.tip_lookback, scale),
                    )
                )
            mask = np.rint(on_frame.mask * np.float32(255.0)).astype(np.uint8)
            finished = time.perf_counter()
        finally:
            torch.set_num_threads(previous_threads)
        return Result(
            mask=mask,
            electrodes=on_frame.electrodes,
            scores=on_frame.scores,
            sizes=on_frame.sizes,
            catheters=catheters,
            timings={
                "preprocess": 1e3 * (preprocessed - start),
                "inference": 1e3 * (inferred - preprocessed),
                "postprocess": 1e3 * (finished - inferred),
                "total": 1e3 * (finished - start),
            },
            mask_threshold=settings.mask_threshold,
        )


def _tip_direction(line: np.ndarray, lookback: float, scale: np.ndarray) -> tuple[float, float]:
    """Unit vector from the point ``lookback`` px of arc behind the tip to the tip, measured on
    the model grid and mapped to the frame (``scale`` = frame / model size per axis), as the
    native engine does; (0, 0) when the two points coincide."""
    steps = np.linalg.norm(np.diff(line, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    behind = line[-1]
    k = int(np.searchsorted(arc, lookback, side="left"))
    if k < len(line):
        if k == 0:
            behind = line[0]
        else:
            t = (lookback - arc[k - 1]) / steps[k - 1]
            behind = line[k - 1] + t * (line[k] - line[k - 1])
    delta = (np.asarray(line[0]) - behind) * scale  # the +0.5/-0.5 of the mapping cancel
    length = float(np.hypot(*delta))
    if length == 0.0:
        return (0.0, 0.0)
    return (float(delta[0] / length), float(delta[1] / length))


def draw(frame: np.ndarray, result: Result, *, scale: int = 1, legend: bool = True) -> np.ndarray:
    """An overlay of a result on its frame (:func:`cathtrack.viz.draw_overlay`): each catheter
    in its own colour (mask, centerline, electrode rings, a tag at the tip), a legend with the
    tag, type and type score of each; electrodes on no catheter as white rings.

    Catheters are tagged with their ``id`` (as in ``result.to_dict()``) and take the palette's
    colours in order; with temporal tracking they are tagged ``#`` and their track id, which
    also fixes their colour over a video. Grey, and grouped in one legend line each: catheters
    of unknown type and, with tracking, tracks not confirmed yet.

    Args:
        frame: (H, W) or (H, W, 3) frame of any dtype (the one the result came from).
        result: the tracker's result for it.
        scale: integer upscaling of the output; marks and text are sized from the output.
        legend: draw the legend.

    Returns:
        (H*scale, W*scale, 3) uint8 BGR image (write it with ``cv2.imwrite``).
    """
    from cathtrack.viz import draw_overlay

    tracked = result.electrode_track_ids is not None
    keys, tags, labels = [], [], []
    for c in result.catheters:
        if tracked and c.track_id < 0:
            keys.append(-1)
            labels.append("not confirmed yet")
        elif c.type == UNKNOWN_TYPE:
            keys.append(-1)
            labels.append("unknown type")
        else:  # the next palette colour, or the track's own
            keys.append(c.track_id if tracked else sum(key >= 0 for key in keys))
            labels.append(f"{c.type} {c.type_score:.2f}")
        tags.append(f"#{c.track_id}" if tracked else str(c.id))
    return draw_overlay(
        frame,
        result.binary,
        result.electrodes,
        [c.centerline for c in result.catheters],
        labels,
        groups=[c.electrodes for c in result.catheters],
        keys=keys,
        tags=tags,
        legend=legend,
        scale=scale,
    )
