"""What a run reports while it trains: TensorBoard scalars and images, and the running means of
the loss terms between two logging steps (summed on the device, so logging costs one host sync).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from inclg.errors import TrainingError
from inclg.losses import LOSS_NAMES

WINDOW_TERMS = (*LOSS_NAMES, "total", "discriminator")


class RunLog:
    """TensorBoard logs of one run under ``run_dir/tb`` (nothing is written when `run_dir` is
    None: the other ranks of a multi-GPU run), and the loss window since the last log."""

    def __init__(self, run_dir: Path | None, device: torch.device, start_step: int = 0) -> None:
        self._writer: Any = None
        if run_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise TrainingError("training logs to TensorBoard, which is not installed: "
                                    "python3 -m pip install 'inclg[train]'") from None
            self._writer = SummaryWriter(log_dir=str(run_dir / "tb"),
                                         purge_step=start_step or None)
        self._sums = torch.zeros(len(WINDOW_TERMS), device=device)
        self._iterations = 0
        self._since = time.perf_counter()

    def add_losses(self, losses: dict[str, torch.Tensor]) -> None:
        """Add one iteration's detached loss terms to the window (no host sync)."""
        self._sums += torch.stack([losses[k] for k in WINDOW_TERMS]).float()
        self._iterations += 1

    def flush_losses(self, step: int, images_per_iteration: int,
                     extra: dict[str, float]) -> dict[str, float]:
        """Means of the window's loss terms, images/s over it and `extra` (LRs, gammas), written
        at `step` and returned; the window starts again."""
        seconds = time.perf_counter() - self._since
        means = (self._sums / max(self._iterations, 1)).tolist()
        scalars = {f"loss/{k}": v for k, v in zip(WINDOW_TERMS, means)}
        scalars.update(extra)
        scalars["speed/images_per_second"] = self._iterations * images_per_iteration / seconds
        self.scalars(scalars, step)
        self._sums.zero_()
        self._iterations, self._since = 0, time.perf_counter()
        return scalars

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self._writer is not None:
            for key, value in values.items():
                self._writer.add_scalar(key, value, step)

    def image(self, tag: str, grid: torch.Tensor, step: int) -> None:
        if self._writer is not None:
            self._writer.add_image(tag, grid, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
