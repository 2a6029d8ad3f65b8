"""Training checkpoints: written atomically, resumed exactly, the last K and the best kept.

A checkpoint is a folder ``<run>/checkpoints/iter_00012000/``:

- ``generator/``, ``discriminator/``: `save_pretrained` folders (safetensors + config.json with
  sha256), so any checkpoint's generator loads directly with ``Generator.from_pretrained``;
- ``generator_ema/``: the moving average of the generator's weights, when the run keeps one
  (``train.ema_decay``); it is the model to evaluate and export (`inference_generator_dir`);
- ``state.pt``: everything else a resume needs (iteration, samples seen, both optimisers, both
  LR schedulers, RNG states, the best validation score), only tensors and plain Python values, so
  it is read back with ``torch.load(weights_only=True)``;
- ``config.yaml``: the resolved configuration that produced it; ``info.json``: a human summary.

The folder is filled under a hidden temporary name and renamed into place at the end, so a crash,
a kill or a full disk during the write leaves the previous checkpoints untouched.
``best.json`` names the checkpoint with the lowest validation loss.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from inclg.config import Config, ConfigError, load_config
from inclg.errors import CheckpointError
from inclg.io.files import atomic_write_text
from inclg.model.io import WeightsError, load_state, load_strict, read_model_info

FORMAT_VERSION = 1
CHECKPOINTS = "checkpoints"
STATE_NAME = "state.pt"
CONFIG_NAME = "config.yaml"
INFO_NAME = "info.json"
BEST_NAME = "best.json"
EMA_NAME = "generator_ema"
_PATTERN = re.compile(r"^iter_(\d{8,})$")


def checkpoint_name(iteration: int) -> str:
    return f"iter_{iteration:08d}"


def rng_state(device: torch.device) -> dict[str, Any]:
    """Every RNG the process has, as tensors and plain lists (loadable with weights_only)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss_next],
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what `rng_state` captured."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_checkpoint(run_dir: str | Path, iteration: int, generator: nn.Module,
                    discriminator: nn.Module, state: dict[str, Any], config: Config,
                    info: dict[str, Any] | None = None,
                    generator_ema: nn.Module | None = None) -> Path:
    """Write checkpoint `iteration` under ``run_dir/checkpoints`` atomically; returns its folder.

    `generator`, `discriminator` and `generator_ema` must have `save_pretrained` (the unwrapped
    modules).
    """
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    name = checkpoint_name(iteration)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=root))
    try:
        generator.save_pretrained(tmp / "generator")  # type: ignore[operator]
        discriminator.save_pretrained(tmp / "discriminator")  # type: ignore[operator]
        if generator_ema is not None:
            generator_ema.save_pretrained(tmp / EMA_NAME)  # type: ignore[operator]
        _write_state({"format_version": FORMAT_VERSION, **state}, tmp / STATE_NAME)
        config.save(tmp / CONFIG_NAME)
        summary = {"iteration": iteration, **(info or {})}
        atomic_write_text(tmp / INFO_NAME, json.dumps(summary, indent=2, default=str) + "\n")
        _fsync_dir(tmp)
        final = root / name
        if final.exists():  # the same iteration again (e.g. after resuming from an older one)
            trash = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=root))
            os.replace(final, trash / name)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _write_state(state: dict[str, Any], path: Path) -> None:
    torch.save(state, path)
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass
class Checkpoint:
    """A checkpoint read back: weights on the CPU, the resume state and the config."""

    path: Path
    iteration: int
    generator: dict[str, torch.Tensor]
    discriminator: dict[str, torch.Tensor]
    state: dict[str, Any]
    config: Config
    generator_ema: dict[str, torch.Tensor] | None = None

    def load_ema(self, generator: nn.Module) -> None:
        """Copy the averaged weights into a generator (the checkpoint must have them)."""
        assert self.generator_ema is not None
        self._load(generator, self.generator_ema, EMA_NAME)

    def load_models(self, generator: nn.Module, discriminator: nn.Module) -> None:
        """Copy the weights into existing (unwrapped) networks, checking every key and shape."""
        self._load(generator, self.generator, "generator")
        self._load(discriminator, self.discriminator, "discriminator")

    def _load(self, module: nn.Module, state: dict[str, torch.Tensor], part: str) -> None:
        try:
            load_strict(module, state, str(self.path / part))
        except WeightsError as err:
            raise CheckpointError(f"{err}; resume with the config the checkpoint was trained "
                                  f"with ({self.path / CONFIG_NAME})") from None


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint folder, verifying the weights' checksums; no code in it is run."""
    path = Path(path)
    if not (path / STATE_NAME).is_file():
        raise CheckpointError(f"{path} is not a complete checkpoint (no {STATE_NAME})")
    try:
        parts = ["generator", "discriminator"] + ([EMA_NAME] if (path / EMA_NAME).is_dir() else [])
        weights = {part: load_state(path / part, read_model_info(path / part)) for part in parts}
        state = torch.load(path / STATE_NAME, map_location="cpu", weights_only=True)
        config = load_config(path / CONFIG_NAME)
    except (WeightsError, ConfigError) as err:
        raise CheckpointError(f"checkpoint {path}: {err}") from None
    except Exception as err:  # pickle / zip errors of a damaged state.pt share no base class
        raise CheckpointError(f"checkpoint {path}: {STATE_NAME} cannot be read "
                              f"({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path}: {STATE_NAME} is not an INCLG training state")
    return Checkpoint(path, int(state["iteration"]), weights["generator"],
                      weights["discriminator"], state, config, weights.get(EMA_NAME))


def inference_generator_dir(checkpoint: str | Path) -> Path:
    """The generator folder of a checkpoint to evaluate or export: the moving average if the
    run kept one, else the trained weights."""
    checkpoint = Path(checkpoint)
    ema = checkpoint / EMA_NAME
    return ema if ema.is_dir() else checkpoint / "generator"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first (temporary folders are skipped)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if (m := _PATTERN.match(p.name)) and (p / STATE_NAME).is_file()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def best_checkpoint(run_dir: str | Path) -> dict[str, Any] | None:
    """The content of ``best.json`` (checkpoint name, iteration, validation loss), if any."""
    path = Path(run_dir) / CHECKPOINTS / BEST_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def mark_best(run_dir: str | Path, checkpoint: Path, iteration: int, val_loss: float) -> None:
    """Point ``best.json`` at `checkpoint` (atomically)."""
    record = {"checkpoint": checkpoint.name, "iteration": iteration, "val_loss": val_loss}
    atomic_write_text(Path(run_dir) / CHECKPOINTS / BEST_NAME, json.dumps(record, indent=2) + "\n")


def prune(run_dir: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the `keep_last` newest checkpoints and the best one, and any temporary
    folders a killed write left behind; returns what was deleted."""
    root = Path(run_dir) / CHECKPOINTS
    found = list_checkpoints(run_dir)
    best = best_checkpoint(run_dir)
    keep = {p.name for p in found[-keep_last:]} if keep_last > 0 else set()
    if best:
        keep.add(best["checkpoint"])
    doomed = [p for p in found if p.name not in keep]
    if root.is_dir():
        doomed += [p for p in root.iterdir() if p.name.startswith(".iter_") and p.is_dir()]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def resolve_resume(resume: str | Path | None, run_dir: str | Path) -> Path | None:
    """The checkpoint `--resume` means: "auto" = the run's latest (None if it has none yet);
    a checkpoint folder; or a run folder (its latest)."""
    if resume is None:
        return None
    if str(resume) == "auto":
        return latest_checkpoint(run_dir)
    path = Path(resume)
    if (path / STATE_NAME).is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise CheckpointError(f"--resume {path}: neither a checkpoint folder nor a run folder "
                              f"with checkpoints")
    return latest


class CheckpointManager:
    """A run's checkpoint policy in one place: save each iteration at most once, point
    ``best.json`` at the best one, keep the last `keep_last` and the best, find where to resume.
    Disabled (`enabled` False: the other ranks, tests), it writes nothing."""

    def __init__(self, run_dir: str | Path, keep_last: int, enabled: bool = True) -> None:
        self.run_dir, self.keep_last, self.enabled = Path(run_dir), keep_last, enabled
        self.last: tuple[int, Path] | None = None  # the newest checkpoint: iteration, folder

    def saved(self, iteration: int) -> bool:
        return self.last is not None and self.last[0] == iteration

    def loaded(self, iteration: int, path: Path) -> None:
        """A resumed run's starting point counts as saved (no duplicate write at that step)."""
        self.last = (iteration, path)

    def save(self, iteration: int, generator: nn.Module, discriminator: nn.Module,
             state: Callable[[], dict[str, Any]], config: Config,
             info: dict[str, Any] | None = None, best_loss: float | None = None,
             generator_ema: nn.Module | None = None) -> Path | None:
        """Checkpoint `iteration` (unless it already is), mark it best if `best_loss` is given,
        prune; returns its folder (None when disabled). `state` is called only if writing."""
        if not self.enabled:
            return None
        if self.last is not None and self.last[0] == iteration:
            path = self.last[1]
        else:
            path = save_checkpoint(self.run_dir, iteration, generator, discriminator, state(),
                                   config, info, generator_ema)
            self.last = (iteration, path)
        if best_loss is not None:
            mark_best(self.run_dir, path, iteration, best_loss)
        prune(self.run_dir, self.keep_last)
        return path

    def best(self) -> dict[str, Any] | None:
        return best_checkpoint(self.run_dir) if self.enabled else None
