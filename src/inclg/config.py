"""Typed configuration: dataclasses with the original INCLG defaults, YAML in, ``a.b=c`` overrides.

One `Config` object describes a whole experiment; it is saved beside every checkpoint so that a
result can always be traced back to the exact settings that produced it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from inclg.errors import ConfigError


@dataclass
class GeneratorConfig:
    """Shape of the multi-task generator. The defaults build the paper's network."""

    channels: int = 64  # width of encoder1; encoder2/3 use 2x and 4x
    residual_blocks: int = 7  # dilated residual blocks in the middle
    landmarks: int = 68  # iBUG-68 points
    landmark_expand: int = 5  # the landmark head widens f_share by this factor (256 -> 1280)
    # The square region (x, y, size) of the 256x256 aligned crop that the network sees and fills,
    # in crop pixels; None = the whole crop (the paper). A windowed network costs (size/256)^2 of
    # the whole-crop one at full resolution; holes must lie inside its window.
    window: tuple[int, int, int] | None = None


@dataclass
class DiscriminatorConfig:
    """PatchGAN discriminator with spectral norm and self-attention (the original's)."""

    channels: int = 64


@dataclass
class LossConfig:
    """Loss weights of the original configuration and the feature network that serves two of them."""

    l1: float = 1.0
    perceptual: float = 0.1
    style: float = 250.0
    tv: float = 0.1
    landmark: float = 4.6e-4
    adversarial: float = 0.01
    gan_type: Literal["lsgan", "nsgan", "hinge"] = "lsgan"
    # ImageNet VGG used for perceptual and style losses: "auto" picks torchvision's VGG19 if its
    # weight file is available locally, else the VGG16 converted by `inclg weights convert-vgg16`.
    feature_net: Literal["auto", "vgg19", "vgg16"] = "auto"
    feature_weights: str | None = None  # explicit weight file; overrides the search
    # The original feeds [0, 1] images to the VGG without ImageNet mean/std; true normalises.
    feature_normalize: bool = False
    # Feature-network layers of the two terms; empty = the paper's five / four (inclg.model.vgg).
    # Fewer and shallower layers make the feature network cheaper (it stops at the deepest one).
    perceptual_layers: tuple[str, ...] = ()
    style_layers: tuple[str, ...] = ()
    # Iteration at which the discriminator starts training and the adversarial term enters the
    # generator loss: an L1-led warm-up before it costs no discriminator time (0 = from the start).
    adversarial_start: int = 0


@dataclass
class DataConfig:
    """Where training data lives and how it is sampled; paths are file lists (one path a line)."""

    train_images: str | None = None
    train_landmarks: str | None = None
    train_masks: str | None = None
    val_images: str | None = None
    val_landmarks: str | None = None
    val_masks: str | None = None
    image_size: int = 256
    flip: bool = True  # horizontal flip with the iBUG-68 left/right permutation
    color_jitter: float = 0.05  # max relative change of brightness / contrast / saturation
    num_workers: int = 4
    # Decode every crop once into memory as uint8 (the window plus `shift` pixels around it), so a
    # training step spends no time on files; cached as .npy under `cache_dir` (default: beside
    # the image list) and reused while the lists are unchanged.
    in_memory: bool = False
    cache_dir: str | None = None
    shift: int = 0  # random shift of the window in pixels (in-memory data only)
    # Fraction of training samples whose hole is drawn from the face's own landmarks (lip, cleft
    # left/right/bilateral, nose, with random jitter of shape and size) instead of the mask list.
    landmark_masks: float = 0.0


@dataclass
class TrainConfig:
    """Optimisation schedule of the paper's Algorithm 1 with the original's numbers."""

    batch_size: int = 4
    lr: float = 2.92e-4
    d2g_lr: float = 0.1  # discriminator LR = lr * d2g_lr
    betas: tuple[float, float] = (0.0, 0.9)
    lr_decay: float = 0.78  # MultiStepLR gamma
    lr_milestones: tuple[int, ...] = (20000, 40000, 60000, 80000, 100000, 120000)
    max_iterations: int = 130000
    seed: int = 0
    # auto = bf16 autocast on GPUs that support it, fp32 on CPUs (bf16 is slower for the
    # paper-size network on some CPUs); bf16 = autocast on any device that has it (measure first)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    run_dir: str = "runs/inclg"  # TensorBoard logs, checkpoints and the resolved config
    log_every: int = 100  # iterations between logged loss terms, LR, gamma and img/s
    sample_every: int = 2000  # iterations between sample grids in TensorBoard (0 = never)
    val_every: int = 5000  # iterations between validations (0 = never)
    val_max_images: int = 1000  # validate on the first N images of the validation list (0 = all)
    checkpoint_every: int = 5000  # iterations between checkpoints (0 = at the end and on a signal)
    keep_last: int = 3  # recent checkpoints kept; the best one is kept as well
    channels_last: bool = True  # NHWC memory layout: faster convolutions on tensor cores
    compile: bool = False  # torch.compile the networks: slower start, faster steps on a GPU
    # Exponential moving average of the generator's weights (0 = off; 0.999 averages over ~1,000
    # iterations): validation, the best checkpoint and the exported model use the average, which
    # smooths out the step-to-step swings of a high learning rate.
    ema_decay: float = 0.0
    # Training images (fixed, seeded) over which the BatchNorm statistics of the generator that is
    # validated and saved are recomputed before each validation and checkpoint (0 = keep the
    # running statistics); see `inclg.train.calibration`.
    bn_calibration_images: int = 0


@dataclass
class TuneConfig:
    """Optuna search as in the paper: the landmark-loss weight alone first, then LR, LR decay and
    batch size, each trial a short training run judged by its validation loss."""

    stage: Literal["landmark", "optim"] = "landmark"
    trials: int = 20  # finished (complete or pruned) trials the study should reach
    iterations: int = 0  # training iterations per trial; 0 = one epoch (the paper's budget)
    report_every: int = 500  # iterations between validations reported to the pruner
    landmark_range: tuple[float, float] = (1e-5, 1e-2)  # loss.landmark, log-uniform
    lr_range: tuple[float, float] = (1e-5, 1e-3)  # train.lr, log-uniform
    lr_decay_range: tuple[float, float] = (0.5, 0.95)  # train.lr_decay, uniform
    batch_sizes: tuple[int, ...] = (4, 8, 16)  # train.batch_size, categorical
    seed: int = 0  # seed of the TPE sampler


@dataclass
class Config:
    """A whole experiment."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples become lists) for YAML / JSON."""
        return _plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        """Write the resolved config as YAML, atomically."""
        from inclg.io.files import atomic_write_text

        atomic_write_text(Path(path), self.to_yaml())


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass `cls` from a nested dict, checking every key and type."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            raise ConfigError(_unknown_key(path, key, names))
        kwargs[key] = _coerce(hints[key], value, path)
    return cls(**kwargs)


def _unknown_key(path: str, key: str, names: list[str]) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(names)}"
    return f"unknown config key '{path}'{hint}"


def _coerce(tp: Any, value: Any, path: str) -> Any:
    """Check `value` against type hint `tp`, converting only where it is lossless (int -> float)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{path}: invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(str, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if tp is float:
        if isinstance(value, str):
            value = _number(value)  # YAML 1.1 reads ``1e-4`` as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported type {tp}")


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=c`` overrides to a nested dict; values are parsed as YAML (``1e-4``, ``[1, 2]``)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value (e.g. train.lr=1e-4)")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{key}' is not a section")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(f"override '{item}': value is not valid YAML ({err})") from None
        node[keys[-1]] = value
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the YAML file (if any), then the overrides; every key is checked."""
    data: dict[str, Any] = Config().to_dict()
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ConfigError(f"config file {path} cannot be read as YAML: {err}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: top level must be a mapping of sections")
        _merge(data, loaded, str(path))
    apply_overrides(data, list(overrides or []))
    return from_dict(Config, data)


def _merge(base: dict[str, Any], new: dict[str, Any], where: str) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, where)
        else:
            base[key] = value
