"""Training configuration: a dataclass tree loaded from YAML, with ``key.sub=value`` overrides.

A config file is a YAML mapping of the fields of :class:`TrainConfig`. Two extras:

- ``inherit: other.yaml`` (a path relative to the file, or a list of them) loads the named file(s)
  first and merges this file on top, mapping by mapping (lists and scalars are replaced whole).
- Command-line overrides ``optimizer.lr=3e-4``, ``model.backbone=resnet18``,
  ``stages.1.steps=500``, ``prioritization.params.keep=0.5`` are applied after the files. Each
  value is converted to the type of the field it sets (``null`` for an optional field; YAML
  syntax for tuples, lists and dicts: ``optimizer.betas=[0.9,0.99]``).

Unknown keys anywhere raise :class:`ConfigError` naming the key and the valid ones, so a typo never
silently trains with a default. :func:`config_hash` is the SHA-256 of the canonical JSON of the
resolved config; checkpoints record it.

Stages: ``stages`` is a list of :class:`StageConfig`; each runs after the previous one from its
weights, with a fresh optimizer, learning-rate schedule and prioritization, and replaces whole
sections of the top level (``train`` data, ``steps``/``epochs``, ``prioritization``). An empty list
means one stage made of the top level.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cathtrack.data.augment import Augment
from cathtrack.model import ModelConfig

DATA_KINDS = ("synthetic", "coco", "ucl", "folder")
SCHEDULES = ("cosine", "step")
DEVICES = ("auto", "cpu", "cuda", "mps")


class ConfigError(ValueError):
    """A config file or override the user can fix (one line, names the offending key)."""


@dataclass
class DataSource:
    """One data set.

    Attributes:
        kind: ``synthetic`` (rendered on the fly, nothing on disk), ``coco`` (docs/design.md 4.1),
            ``ucl`` (UCL HDF5 folder) or ``folder`` (image/mask pairs, segmentation only).
        preset: synthetic preset (``easy``, ``clinical``, ``hard``).
        synth: synthetic: preset fields to replace (``SynthConfig``, docs/synthetic.md), e.g.
            ``{field_of_view_mm: [100, 140]}`` for a zoomed view.
        seed: synthetic frame stream; frame i is the same for every run with this seed.
        length: synthetic frames; null for an endless stream (frames never repeat, so the
            prioritization keeps no per-sample memory and a run must give ``steps``).
        path: root of a ``coco``/``ucl``/``folder`` data set (relative to the working directory).
        images_dir: ``folder``: sub-folder of the images.
        masks_dir: ``folder``: sub-folder of the masks (may equal images_dir with a suffix).
        mask_suffix: ``folder``: suffix of a mask's file stem (``_gt`` for ``1.png``/``1_gt.png``).
        augment: apply ``data.augment`` (training only; validation never augments).
    """

    kind: str = "synthetic"
    preset: str = "clinical"
    synth: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    length: int | None = None
    path: str | None = None
    images_dir: str = "images"
    masks_dir: str = "masks"
    mask_suffix: str = ""
    augment: bool = True

    def describe(self) -> str:
        """Short human-readable name, e.g. ``synthetic clinical seed 0 x 2450``."""
        if self.kind == "synthetic":
            count = "endless" if self.length is None else f"x {self.length}"
            return f"synthetic {self.preset} seed {self.seed} {count}"
        return f"{self.kind} {self.path}"


def _default_val() -> DataSource:
    # Another seed than the default training stream: validation frames are never trained on.
    return DataSource(seed=1, length=200, augment=False)


@dataclass
class DataConfig:
    """Data of the run.

    Attributes:
        size: square network input side in pixels (a multiple of 32); every source is resized.
        train: training data (stages may replace it).
        val: validation data, a fixed set (synthetic sources need a ``length``).
        augment: augmentation ranges for training sources with ``augment: true``.
        num_workers: DataLoader worker processes (0: load in the training process).
        crop: side of the random square crops the first ``crop_fraction`` of each stage's steps
            train on (a multiple of 32, below ``size``); null: full frames throughout. The
            network is fully convolutional, so a crop costs (crop / size)^2 of a frame's step;
            the last steps see full frames, so the model ends tuned to the whole field.
        crop_fraction: share of each stage's steps that train on crops (the first ones).
        cache_frames: keep rendered synthetic training frames in memory (per loading process),
            so a fixed set of ``length`` frames is rendered once, not once per epoch (fixed-length
            synthetic sets only; other sources are read as they are).
    """

    size: int = 256
    train: DataSource = field(default_factory=lambda: DataSource(length=2450))
    val: DataSource = field(default_factory=_default_val)
    augment: Augment = field(default_factory=Augment)
    num_workers: int = 2
    crop: int | None = None
    crop_fraction: float = 0.8
    cache_frames: bool = False


@dataclass
class OptimizerConfig:
    """AdamW (the paper: beta 0.9 / 0.999, lr 1e-4; weight decay: torch's default 0.01)."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    eps: float = 1e-8


@dataclass
class ScheduleConfig:
    """Learning-rate schedule of each stage, a function of the stage's step.

    Attributes:
        name: ``cosine`` (to ``min_lr_ratio`` x lr at the last step) or ``step`` (x ``gamma`` at
            each milestone).
        warmup_steps: linear warm-up from ``warmup_start_ratio`` x lr to lr.
        warmup_start_ratio: first warm-up factor.
        min_lr_ratio: ``cosine``: final factor.
        milestones: ``step``: fractions of the stage's steps at which the rate drops.
        gamma: ``step``: factor per milestone.
    """

    name: str = "cosine"
    warmup_steps: int = 0
    warmup_start_ratio: float = 0.01
    min_lr_ratio: float = 0.01
    milestones: tuple[float, ...] = (0.7, 0.9)
    gamma: float = 0.1


@dataclass
class PrioritizationConfig:
    """The training strategy (:func:`cathtrack.train.prioritization.build_prioritization`).

    Attributes:
        name: strategy name (``mdrp``, ``topk_soft``, ``dtp``, ``single_seg``, ...).
        params: the strategy's own parameters (``keep``, ``fraction``, ``weights``, ``gamma``...).
        kpi_ema: alpha of the task KPI moving average (per step).
        sample_momentum: momentum of the per-sample KPI memory (per visit).
        kappa_min: floor of kappa in 1 / kappa.
        warmup_fraction: Top-K strategies: keep every sample for this fraction of the stage's
            steps (sets ``warmup_steps`` unless ``params`` gives it).
        ramp_fraction: Top-K strategies: then lower the kept fraction to ``keep`` over this
            fraction of the stage's steps (sets ``ramp_steps`` unless ``params`` gives it).
    """

    name: str = "mdrp"
    params: dict[str, Any] = field(default_factory=dict)
    kpi_ema: float = 0.1
    sample_momentum: float = 0.7
    kappa_min: float = 0.05
    warmup_fraction: float = 0.1
    ramp_fraction: float = 0.2


@dataclass
class StageConfig:
    """One stage of staged training; a null field keeps the top level's value.

    Attributes:
        name: label in logs and plots (default ``stage<i>``).
        train: training data of this stage.
        steps: optimisation steps of this stage.
        epochs: or epochs of this stage (steps = epochs x batches per epoch).
        prioritization: strategy of this stage.
    """

    name: str = ""
    train: DataSource | None = None
    steps: int | None = None
    epochs: int | None = None
    prioritization: PrioritizationConfig | None = None


@dataclass
class TrainConfig:
    """Everything a training run depends on (see the module docstring for the file format).

    Attributes:
        model: the architecture.
        data: training and validation data.
        optimizer: AdamW settings.
        schedule: learning-rate schedule.
        prioritization: task/sample prioritization (MDRP or a baseline).
        stages: staged training (empty: one stage).
        batch_size: samples per step and process (the global batch is x the number of processes).
        steps: optimisation steps (exactly one of steps / epochs).
        epochs: or epochs over the training set.
        amp: mixed precision (float16 autocast + gradient scaling); only on CUDA.
        cpu_bf16: on the CPU, bfloat16 autocast (no gradient scaling needed) where the CPU
            computes bfloat16 natively (AVX512-BF16 or AMX; about 1.8x faster steps for
            ResNet34); refused on a CPU without it, ignored on CUDA; null: where the CPU has
            it, float32 elsewhere. Off by default so a run gives the same numbers on every CPU.
        grad_clip: maximum gradient norm (null: no clipping).
        size_weight: lambda of the size L1 in the detection loss (paper eq. 7: 1).
        seed: model initialisation, data order and augmentation.
        device: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda`` or ``mps``.
        threads: torch CPU threads (null: torch's default).
        log_every: steps between progress-bar and TensorBoard updates (the CSV logs every step).
        val_every: steps between validations (and best-model checks); 0: only at the end.
        val_at_start: validate the untrained model at step 0 (the baseline of the plots).
        checkpoint_every: steps between ``last`` checkpoints (also written at each stage's end).
        channels_last: train with the model and batches in channels-last memory layout (faster
            convolutions on x86 CPUs with oneDNN and on CUDA tensor cores; same results up to
            float rounding).
        init: a model file (``.safetensors`` beside its ``.json``, or a checkpoint directory)
            whose weights start the run instead of a random initialisation, e.g. the shipped
            model for fine-tuning on your own labels. Its architecture must equal ``model``'s.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    prioritization: PrioritizationConfig = field(default_factory=PrioritizationConfig)
    stages: list[StageConfig] = field(default_factory=list)
    batch_size: int = 8
    steps: int | None = None
    epochs: int | None = 100
    amp: bool = True
    cpu_bf16: bool | None = False
    grad_clip: float | None = 10.0
    size_weight: float = 1.0
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    log_every: int = 10
    val_every: int = 1000
    val_at_start: bool = True
    checkpoint_every: int = 1000
    channels_last: bool = False
    init: str | None = None

    def __post_init__(self) -> None:
        check_config(self)


@dataclass(frozen=True)
class Stage:
    """One stage with every field resolved against the top level."""

    index: int
    name: str
    train: DataSource
    steps: int | None
    epochs: int | None
    prioritization: PrioritizationConfig


def resolve_stages(config: TrainConfig) -> list[Stage]:
    """The stages to run, in order (one stage made of the top level when ``stages`` is empty)."""
    overrides = config.stages or [StageConfig()]
    stages = []
    for index, stage in enumerate(overrides):
        has_length = stage.steps is not None or stage.epochs is not None
        stages.append(
            Stage(
                index=index,
                name=stage.name or f"stage{index}",
                train=stage.train or config.data.train,
                steps=stage.steps if has_length else config.steps,
                epochs=stage.epochs if has_length else config.epochs,
                prioritization=stage.prioritization or config.prioritization,
            )
        )
    return stages


def check_config(config: TrainConfig) -> None:
    """Raises :class:`ConfigError` for values no run could use."""
    if config.data.size <= 0 or config.data.size % 32:
        raise ConfigError(f"data.size must be a positive multiple of 32, got {config.data.size}")
    _check_choice("schedule.name", config.schedule.name, SCHEDULES)
    _check_choice("device", config.device, DEVICES)
    for name in ("batch_size", "log_every", "checkpoint_every"):
        if getattr(config, name) <= 0:
            raise ConfigError(f"{name} must be positive, got {getattr(config, name)}")
    if config.val_every < 0:
        raise ConfigError(f"val_every must be >= 0, got {config.val_every}")
    if config.data.num_workers < 0:
        raise ConfigError(f"data.num_workers must be >= 0, got {config.data.num_workers}")
    _check_ranges(config)
    crop = config.data.crop
    if crop is not None and (crop <= 0 or crop % 32 or crop >= config.data.size):
        raise ConfigError(
            f"data.crop must be a positive multiple of 32 below data.size "
            f"({config.data.size}) or null, got {crop}"
        )
    if not 0.0 <= config.data.crop_fraction <= 1.0:
        raise ConfigError(f"data.crop_fraction must be in [0, 1], got {config.data.crop_fraction}")
    _check_source("data.val", config.data.val)
    if config.data.val.kind == "synthetic" and config.data.val.length is None:
        raise ConfigError("data.val.length: a synthetic validation set needs a fixed length")
    for stage in resolve_stages(config):
        where = "top level" if not config.stages else f"stages.{stage.index}"
        _check_source(f"{where} train data", stage.train)
        if (stage.steps is None) == (stage.epochs is None):
            raise ConfigError(f"{where}: give exactly one of steps and epochs")
        if (stage.steps or stage.epochs or 0) <= 0:
            raise ConfigError(f"{where}: steps / epochs must be positive")
        if stage.epochs is not None and stage.train.kind == "synthetic" and not stage.train.length:
            raise ConfigError(f"{where}: an endless synthetic stream has no epochs; give steps")
        train, val = stage.train, config.data.val
        if train.kind == val.kind == "synthetic" and (train.preset, train.seed) == (
            val.preset,
            val.seed,
        ):
            raise ConfigError(
                f"{where}: the synthetic validation set uses the training seed {train.seed}; "
                "give data.val.seed another value so validation frames are never trained on"
            )


def _check_range(
    key: str, value: float, low: float, high: float, *, open_low=False, open_high=False
) -> None:
    """Refuses a value outside [low, high] (ends excluded where ``open_*``) or not finite."""
    too_low = value <= low if open_low else value < low
    too_high = value >= high if open_high else value > high
    if not math.isfinite(value) or too_low or too_high:
        left, right = "(" if open_low else "[", ")" if open_high else "]"
        raise ConfigError(f"{key} must be in {left}{low}, {high}{right}, got {value}")


def _check_ranges(config: TrainConfig) -> None:
    """Numbers that would make a run silently wrong (e.g. a negative ``grad_clip`` makes torch
    negate the gradients: gradient ascent) or fail deep inside torch."""
    inf = math.inf
    optimizer, schedule = config.optimizer, config.schedule
    _check_range("optimizer.lr", optimizer.lr, 0.0, inf, open_low=True, open_high=True)
    for index, beta in enumerate(optimizer.betas):
        _check_range(f"optimizer.betas[{index}]", beta, 0.0, 1.0, open_high=True)
    _check_range("optimizer.weight_decay", optimizer.weight_decay, 0.0, inf, open_high=True)
    _check_range("optimizer.eps", optimizer.eps, 0.0, inf, open_low=True, open_high=True)
    if schedule.warmup_steps < 0:
        raise ConfigError(f"schedule.warmup_steps must be >= 0, got {schedule.warmup_steps}")
    _check_range("schedule.warmup_start_ratio", schedule.warmup_start_ratio, 0.0, 1.0,
                 open_low=True)  # fmt: skip
    _check_range("schedule.min_lr_ratio", schedule.min_lr_ratio, 0.0, 1.0)
    _check_range("schedule.gamma", schedule.gamma, 0.0, 1.0, open_low=True)
    for index, milestone in enumerate(schedule.milestones):
        _check_range(f"schedule.milestones[{index}]", milestone, 0.0, 1.0)
    if config.grad_clip is not None:
        _check_range("grad_clip", config.grad_clip, 0.0, inf, open_low=True, open_high=True)
    _check_range("size_weight", config.size_weight, 0.0, inf, open_high=True)
    strategies = [("prioritization", config.prioritization)] + [
        (f"stages.{index}.prioritization", stage.prioritization)
        for index, stage in enumerate(config.stages)
        if stage.prioritization is not None
    ]
    for where, strategy in strategies:
        _check_range(f"{where}.kpi_ema", strategy.kpi_ema, 0.0, 1.0, open_low=True)
        _check_range(f"{where}.sample_momentum", strategy.sample_momentum, 0.0, 1.0)
        _check_range(f"{where}.kappa_min", strategy.kappa_min, 0.0, 1.0, open_low=True)
        _check_range(f"{where}.warmup_fraction", strategy.warmup_fraction, 0.0, 1.0)
        _check_range(f"{where}.ramp_fraction", strategy.ramp_fraction, 0.0, 1.0)


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")


def _check_source(key: str, source: DataSource) -> None:
    _check_choice(f"{key} kind", source.kind, DATA_KINDS)
    if source.kind != "synthetic" and not source.path:
        raise ConfigError(f"{key}: a {source.kind} data set needs a path")
    if source.length is not None and source.length <= 0:
        raise ConfigError(f"{key}: length must be positive or null, got {source.length}")


# --------------------------------------------------------------------------- loading


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    base: dict | None = None,
) -> TrainConfig:
    """A TrainConfig from a YAML file (with ``inherit``) and ``key=value`` overrides.

    Args:
        path: YAML file; None: start from ``base`` (or the defaults).
        overrides: ``dotted.key=value`` strings, applied in order after the file.
        base: a config dict used when ``path`` is None (e.g. a run's saved config on resume).

    Raises:
        ConfigError: missing file, bad YAML, an unknown key or a value of the wrong type.
    """
    values = _read_yaml(Path(path), chain=()) if path is not None else dict(base or {})
    for override in overrides:
        key, separator, text = override.partition("=")
        if not separator or not key:
            raise ConfigError(f"override {override!r} is not of the form key=value")
        _set_path(values, key.strip().split("."), text, TrainConfig)
    return from_dict(TrainConfig, values)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key given twice in one mapping (plain PyYAML keeps the
    last one silently, so a run would train with a value the reader of the file did not see)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path, chain: tuple[Path, ...]) -> dict:
    resolved = path.resolve()
    if resolved in chain:
        raise ConfigError(f"{path}: inherit cycle through {' -> '.join(map(str, chain))}")
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        document = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from error
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of config keys")
    parents = document.pop("inherit", None)
    if parents is None:
        return document
    merged: dict = {}
    for parent in [parents] if isinstance(parents, str) else list(parents):
        merged = _merge(merged, _read_yaml(path.parent / parent, (*chain, resolved)))
    return _merge(merged, document)


def _merge(base: dict, update: dict) -> dict:
    """``update`` over ``base``, recursing into mappings present in both."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _set_path(
    values: dict | list, keys: list[str], text: str, kind: Any, done: tuple[str, ...] = ()
) -> None:
    """Stores the override ``text`` at ``keys`` inside ``values``, typed by the field it sets.

    ``done`` holds the keys already walked (for error messages naming the full dotted key).
    """
    key, rest = keys[0], keys[1:]
    path = ".".join((*done, key))
    kind = _strip_optional(kind)
    if isinstance(values, list):
        if not key.isdigit() or int(key) >= len(values):
            raise ConfigError(f"no list element {path!r}: the list has {len(values)} element(s)")
        target, slot, child = values, int(key), _list_item_type(kind, path)
    else:
        child = _child_type(kind, path)
        target, slot = values, key
    if not rest:
        target[slot] = _parse_text(text, child, path)
        return
    container = target[slot] if isinstance(target, list) else target.get(slot)
    if container is None:
        is_list = typing.get_origin(_strip_optional(child)) is list
        container = target[slot] = [] if is_list else {}
    if not isinstance(container, dict | list):
        raise ConfigError(f"{path} is a value, not a section; cannot set {'.'.join(keys)}")
    _set_path(container, rest, text, child, (*done, key))


def _child_type(kind: Any, path: str) -> Any:
    """Type of the field named by the last part of the dotted ``path`` inside ``kind``."""
    key = path.rpartition(".")[2]
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        names = [f.name for f in dataclasses.fields(kind)]
        if key not in names:
            raise ConfigError(f"unknown key {path!r}; valid keys here: {', '.join(names)}")
        return hints[key]
    if typing.get_origin(kind) is dict:
        return typing.get_args(kind)[1]
    raise ConfigError(f"{path!r}: cannot set a key inside a value of type {_type_name(kind)}")


def _list_item_type(kind: Any, path: str) -> Any:
    if typing.get_origin(kind) is not list:
        raise ConfigError(f"{path!r}: cannot index a value of type {_type_name(kind)}")
    return typing.get_args(kind)[0]


def _parse_text(text: str, kind: Any, key: str) -> Any:
    """Command-line text -> a value of ``kind`` (scalars directly, containers as YAML)."""
    inner = _strip_optional(kind)
    if kind is not inner and text.strip().lower() in ("null", "none", "~"):
        return None
    if inner in (str, int, float, bool):
        return _convert(text, inner, key)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{key}: {text!r} is not valid YAML") from error


def from_dict(kind: Any, value: Any, key: str = "config") -> Any:
    """Builds ``kind`` (a dataclass, container or scalar type) from plain YAML/JSON values."""
    inner = _strip_optional(kind)
    if value is None:
        if inner is not kind or kind is Any:
            return None
        raise ConfigError(f"{key} cannot be null (expected {_type_name(kind)})")
    if kind is Any:
        return value
    if dataclasses.is_dataclass(inner):
        if isinstance(value, inner):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        hints = typing.get_type_hints(inner)
        names = [f.name for f in dataclasses.fields(inner)]
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ConfigError(
                f"unknown key {_join(key, unknown[0])!r}; valid keys here: {', '.join(names)}"
            )
        arguments = {name: from_dict(hints[name], value[name], _join(key, name)) for name in value}
        try:
            return inner(**arguments)
        except ConfigError:
            raise
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{key}: {error}") from error
    origin = typing.get_origin(inner)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        arguments = typing.get_args(inner)
        if origin is tuple and arguments and arguments[-1] is not Ellipsis:
            if len(value) != len(arguments):
                raise ConfigError(f"{key} needs {len(arguments)} values, got {list(value)}")
            return tuple(
                from_dict(a, v, f"{key}.{i}")
                for i, (a, v) in enumerate(zip(arguments, value, strict=True))
            )
        items = [from_dict(arguments[0], v, f"{key}.{i}") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return {
            str(k): from_dict(typing.get_args(inner)[1], v, _join(key, k)) for k, v in value.items()
        }
    return _convert(value, inner, key)


def _convert(value: Any, kind: type, key: str) -> Any:
    """A scalar of ``kind`` from a YAML scalar or command-line text."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
    elif kind is float:
        # PyYAML reads 1e-4 (no dot) as a string: accept any text float() accepts.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"{key} must be {_type_name(kind)}, got {value!r}")


def _strip_optional(kind: Any) -> Any:
    """``X | None`` -> ``X`` (other types unchanged)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        arguments = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(arguments) == 1:
            return arguments[0]
    return kind


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind))


def _join(key: str, name: Any) -> str:
    return str(name) if key == "config" else f"{key}.{name}"


# --------------------------------------------------------------------------- output


def to_dict(config: TrainConfig) -> dict:
    """Plain JSON/YAML-serialisable dict (tuples become lists); ``from_dict`` inverts it."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def to_yaml(config: TrainConfig) -> str:
    """The resolved config as YAML (what a run directory keeps as ``config.yaml``)."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def config_hash(config: TrainConfig) -> str:
    """SHA-256 (hex) of the canonical JSON (sorted keys, no spaces) of the resolved config."""
    canonical = json.dumps(to_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b, name = old.get(key), new.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            changed += changed_keys(a, b, f"{name}.")
        elif a != b:
            changed.append(name)
    return changed
