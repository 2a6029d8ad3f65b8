"""The paper's training loop (Algorithm 1): a discriminator phase, then a generator phase.

Each iteration:

1. **generator forward** (once): the masked faces go through G, giving images and landmarks;
2. **D phase** (`Trainer.d_step`): D scores real faces and the *detached* fakes in one batch; the
   generator takes no part (frozen), D is updated;
3. **G phase** (`Trainer.g_step`): D is frozen (``requires_grad`` off, so no weight gradients are
   computed for it); the six losses (pixel, perceptual, style, TV, landmark, adversarial) are
   back-propagated into G only and G is updated;
4. both LR schedules step (MultiStepLR, per iteration).

Since G is frozen during the D phase, its output before and after that phase is the same, so one
forward pass serves both phases. (The original code instead back-propagates both losses before
stepping both optimisers, which lets the generator's adversarial term leak into D's gradients.)

Speed: bf16 autocast on GPUs, channels-last tensors, the feature network run twice per step
(see `inclg.losses`), D run once on real+fake together, fused Adam on CUDA, no host sync except
at logging steps, an endless seeded loader with workers and pinned memory, optional torch.compile.
"""

from __future__ import annotations

import contextlib
from collections import Counter
import logging
import math
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import Dataset

from inclg.config import Config, ConfigError, LossConfig
from inclg.evaluate import metrics
from inclg.losses import LOSS_NAMES, InpaintingLoss
from inclg.model.discriminator import Discriminator
from inclg.model.generator import Generator
from inclg.model.layers import Attention
from inclg.model.masking import composite, masked_input
from inclg.model.vgg import VGGFeatures
from inclg.train import checkpoint as ckpt
from inclg.train import distributed
from inclg.train.calibration import calibration_batches, recalibrate_batchnorm
from inclg.train.data import train_loader, val_loader
from inclg.train.distributed import DistInfo
from inclg.train.runlog import RunLog, TrainingError
from inclg.train.samples import sample_grid

log = logging.getLogger(__name__)

# Terms of the validation loss: the generator's weighted losses without the adversarial one,
# whose value depends on the discriminator of the moment and is no measure of the output.
VAL_LOSS_TERMS = ("l1", "perceptual", "style", "tv", "landmark")
VAL_METRICS = ("psnr_hole", "ssim_hole", "l1_hole", "nme")
SAMPLE_FACES = 4  # faces in the TensorBoard sample grid
STOP_CHECK_EVERY = 10  # iterations between the ranks' agreement on a stop signal (DDP only)


def validation_loss(terms: dict[str, float], weights: LossConfig) -> float:
    """Σ weight · term over `VAL_LOSS_TERMS`: the number that picks the best checkpoint and that
    the Optuna search minimises (with the weights of its *base* config, see `inclg.train.tune`)."""
    return float(sum(getattr(weights, k) * terms[k] for k in VAL_LOSS_TERMS))


def unused_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Parameters a network builds but never uses: the `alpha` of attention without long-range
    input (the discriminator's). They are frozen so that every trainable parameter receives a
    gradient, which is what DDP expects."""
    return [m.alpha for m in module.modules() if isinstance(m, Attention) and m.fuse is None]


def set_requires_grad(parameters: list[nn.Parameter], flag: bool) -> None:
    for parameter in parameters:
        parameter.requires_grad_(flag)


class PhaseTimer:
    """Wall-clock seconds per named phase, synchronising the device at every boundary.

    Disabled (the default) it costs nothing and does not synchronise; the benchmark enables it in
    a separate run to see where a step's time goes.
    """

    def __init__(self, device: torch.device, enabled: bool = False) -> None:
        self.device, self.enabled = device, enabled
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        self._sync()
        start = time.perf_counter()
        yield
        self._sync()
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


@dataclass
class Progress:
    """What the loop reports after every iteration; `scalars` only at logging steps."""

    iteration: int
    max_iterations: int
    images: int  # images per iteration over all ranks
    scalars: dict[str, float] | None = None


@dataclass
class FitResult:
    """How a `Trainer.fit` call ended."""

    iteration: int
    interrupted: bool = False
    checkpoint: Path | None = None  # the last checkpoint written
    validation: dict[str, float] | None = None  # the last validation
    best: dict[str, Any] | None = None  # best.json of the run
    images_per_second: float = 0.0
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)  # validations


class _StopSignal:
    """SIGINT / SIGTERM set a flag; the loop finishes its step, checkpoints and returns.
    A second signal gets the previous handler (so a second Ctrl-C interrupts at once)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum
        signal.signal(signum, self._previous[signum])

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer:
    """Generator, discriminator, losses, optimisers and schedules of one run, and its loop.

    `feature_net` replaces the VGG loaded from ``config.loss`` (tests pass a random one);
    `train_data` / `val_data` replace the datasets named in ``config.data``. `run_dir` (default
    ``config.train.run_dir``) receives TensorBoard logs and, with `checkpoints`, checkpoints;
    only rank 0 writes anything.
    """

    def __init__(self, config: Config, *, dist: DistInfo | None = None,
                 feature_net: VGGFeatures | None = None, train_data: Dataset | None = None,
                 val_data: Dataset | None = None, run_dir: str | Path | None = None,
                 checkpoints: bool = True, handle_signals: bool = True,
                 timer: PhaseTimer | None = None) -> None:
        self.config = config
        tc = config.train
        self.dist = dist or DistInfo(device=distributed.select_device(tc.device))
        self.device = device = self.dist.device
        self.run_dir = Path(run_dir if run_dir is not None else tc.run_dir)
        self.write = self.dist.is_main
        self.checkpointer = ckpt.CheckpointManager(self.run_dir, tc.keep_last,
                                                   enabled=self.write and checkpoints)
        self.handle_signals = handle_signals
        self.train_data, self.val_data = train_data, val_data
        self.timer = timer or PhaseTimer(device)

        with torch.random.fork_rng(devices=[]):  # seeded without touching the caller's RNG
            torch.manual_seed(tc.seed)  # the same initial weights on every rank
            self.generator = Generator(config.generator).to(device)
            self.discriminator = Discriminator(config.discriminator).to(device)
        self.loss = InpaintingLoss(config.loss, feature_net).to(device)
        self.memory_format = torch.channels_last if tc.channels_last else torch.contiguous_format
        for module in (self.generator, self.discriminator, self.loss):
            module.to(memory_format=self.memory_format)

        set_requires_grad(unused_parameters(self.discriminator), False)
        self.d_parameters = [p for p in self.discriminator.parameters() if p.requires_grad]
        fused = True if device.type == "cuda" else None
        betas = (float(tc.betas[0]), float(tc.betas[1]))
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), lr=tc.lr, betas=betas,
                                            fused=fused)
        self.d_optimizer = torch.optim.Adam(self.d_parameters, lr=tc.lr * tc.d2g_lr, betas=betas,
                                            fused=fused)
        milestones = list(tc.lr_milestones)
        self.g_scheduler = torch.optim.lr_scheduler.MultiStepLR(self.g_optimizer, milestones,
                                                                tc.lr_decay)
        self.d_scheduler = torch.optim.lr_scheduler.MultiStepLR(self.d_optimizer, milestones,
                                                                tc.lr_decay)
        self.autocast_dtype = self._autocast_dtype()
        self.generator_ema = self._make_ema(tc.ema_decay)

        # What each phase calls: DDP wrappers synchronise gradients; the frozen D of the G phase
        # is the bare module, so DDP neither waits for D gradients nor reduces any.
        g_train: nn.Module = self.generator
        d_train: nn.Module = self.discriminator
        if self.dist.distributed:
            ids = [device.index] if device.type == "cuda" else None
            g_train = DDP(self.generator, device_ids=ids)
            d_train = DDP(self.discriminator, device_ids=ids)
        d_frozen: nn.Module = self.discriminator if self.dist.distributed else d_train
        if tc.compile:
            g_train, d_train = torch.compile(g_train), torch.compile(d_train)
            d_frozen = torch.compile(d_frozen) if self.dist.distributed else d_train
        self.g_train, self.d_train, self.d_frozen = g_train, d_train, d_frozen

        self.iteration = 0
        self.samples_seen = 0  # global sample-stream position (all ranks)
        self.best_val_loss = math.inf
        self.train_seconds = 0.0  # in `fit` before this process (see `elapsed_seconds`)
        self._clock: float | None = None  # when this process's `fit` started
        self._log: RunLog | None = None  # open during `fit`
        self._validated: tuple[int, dict[str, float]] | None = None  # the last validation
        # every validation of the run, resumes included: the training curve travels with the
        # checkpoint when the run folder (and its TensorBoard logs) stays behind on a machine
        self.validation_history: list[dict[str, float]] = []
        self._calibration: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # (image, mask)
        self._calibrated_at: int | None = None  # iteration of the last BatchNorm calibration

    def _make_ema(self, decay: float) -> AveragedModel | None:
        """The averaged generator (`train.ema_decay`), always in eval mode: it is only run."""
        if decay == 0:
            return None
        if not 0 < decay < 1:
            raise ConfigError(f"train.ema_decay: {decay} is not in [0, 1) (0 = off)")
        ema = AveragedModel(self.generator, multi_avg_fn=get_ema_multi_avg_fn(decay),
                            use_buffers=False)
        return ema.eval()

    @property
    def inference_generator(self) -> Generator:
        """What validation, samples and the best checkpoint judge: the average if kept."""
        if self.generator_ema is None:
            return self.generator
        return self.generator_ema.module  # type: ignore[return-value]

    @torch.no_grad()
    def update_ema(self) -> None:
        """Average the weights; copy the buffers (spectral-norm u/v, BatchNorm statistics),
        which belong to the live weights and are not meaningful as averages."""
        if self.generator_ema is None:
            return
        self.generator_ema.update_parameters(self.generator)
        for mine, live in zip(self.generator_ema.module.buffers(), self.generator.buffers()):
            mine.copy_(live)

    def calibrate(self) -> None:
        """Recompute the BatchNorm statistics of `inference_generator` for its current weights
        (`train.bn_calibration_images`; once per iteration): before validating, sampling or
        saving it. The fixed calibration faces are drawn once with the run's seed, outside the
        global RNG, so the sample stream and an exact resume are unaffected."""
        count = self.config.train.bn_calibration_images
        if count <= 0 or self.train_data is None or self._calibrated_at == self.iteration:
            return
        if self._calibration is None:
            self._calibration = calibration_batches(self.train_data, count,
                                                    self.config.train.batch_size,
                                                    self.config.train.seed)
        batches = ((self._to_layout(image), self._to_layout(mask))
                   for image, mask in self._calibration)
        with self.autocast():
            recalibrate_batchnorm(self.inference_generator, batches)
        self._calibrated_at = self.iteration

    # --- one iteration ------------------------------------------------------------------------

    @property
    def global_batch(self) -> int:
        return self.config.train.batch_size * self.dist.world_size

    def _autocast_dtype(self) -> torch.dtype | None:
        """bf16 autocast on GPUs that support it ("auto" or "bf16") and on CPUs when asked
        ("bf16"); otherwise fp32.

        Whether bf16 pays on a CPU depends on the processor and the network (on one 2-core
        Xeon it was slower for the paper-size generator; on a 2-core AMD EPYC with AVX-512-BF16
        it is ~1.5x faster for the compact one): measure with benchmarks/train_speed.py
        --config, and set train.precision per config.
        """
        precision = self.config.train.precision
        if precision == "fp32" or self.device.type not in ("cuda", "cpu"):
            return None
        if precision == "auto" and self.device.type == "cpu":
            return None
        if self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return None
        return torch.bfloat16

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def to_device(self, image: torch.Tensor, landmarks: torch.Tensor,
                  mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A loader batch on this process's device, images and masks in the training layout."""
        return (self._to_layout(image), landmarks.to(self.device, non_blocking=True),
                self._to_layout(mask))

    def _to_layout(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)

    def train_step(self, image: torch.Tensor, landmarks: torch.Tensor,
                   mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """One iteration of Algorithm 1 on a device batch: image [B, 3, H, W] in [0, 1],
        landmarks [B, 68, 2] pixels, mask [B, 1, H, W] (1 = hole). Returns the detached losses
        (the six unweighted generator terms, "total" and "discriminator") without a host sync."""
        with self.timer("g_forward"), self.autocast():
            fake, lmk_pred = self.g_train(masked_input(image, mask), mask)  # [B,3,H,W], [B,68,2]
        # Before loss.adversarial_start (an L1-led warm-up) D is neither trained nor asked.
        adversarial = self.iteration >= self.config.loss.adversarial_start
        d_loss = self.d_step(image, fake.detach()) if adversarial else fake.new_zeros(())
        losses = self.g_step(image, mask, fake, lmk_pred, landmarks, adversarial)
        self.update_ema()
        self.g_scheduler.step()
        with warnings.catch_warnings():  # D's schedule counts the warm-up, where D is not stepped
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler")
            self.d_scheduler.step()
        self.iteration += 1
        self.samples_seen += self.global_batch
        return {**losses, "discriminator": d_loss}

    def d_step(self, image: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Discriminator phase: real vs detached fake in one pass of 2B images; G is frozen."""
        with self.timer("d_step"):
            set_requires_grad(self.d_parameters, True)
            with self.autocast():
                logits = self.d_train(torch.cat([image, fake]))  # [2B, 1, h, w]
                real_logits, fake_logits = logits.chunk(2)
                loss = self.loss.discriminator_loss(real_logits, fake_logits)
            loss.backward()
            self.d_optimizer.step()
            self.d_optimizer.zero_grad(set_to_none=True)  # free them before the G phase
        return loss.detach()

    def g_step(self, image: torch.Tensor, mask: torch.Tensor, fake: torch.Tensor,
               lmk_pred: torch.Tensor, lmk_gt: torch.Tensor,
               adversarial: bool = True) -> dict[str, torch.Tensor]:
        """Generator phase: D frozen, the six losses (five without `adversarial`) back-propagated
        into G, G updated."""
        set_requires_grad(self.d_parameters, False)
        with self.timer("g_losses"), self.autocast():
            d_fake = self.d_frozen(fake) if adversarial else None  # [B, 1, h, w]
            losses = self.loss.generator_losses(fake, image, mask, lmk_pred, lmk_gt, d_fake)
        with self.timer("g_backward"):
            losses["total"].backward()
        with self.timer("g_optimizer"):
            self.g_optimizer.step()
            self.g_optimizer.zero_grad(set_to_none=True)
        return {k: v.detach() for k, v in losses.items()}

    # --- validation and samples -----------------------------------------------------------

    @torch.no_grad()
    def evaluate_batch(self, image: torch.Tensor, landmarks: torch.Tensor,
                       mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-batch loss terms (batch means) and per-image metrics [B] of the eval-mode model."""
        with self.autocast():
            out, lmk_pred = self.inference_generator(masked_input(image, mask), mask)
            d_fake = self.discriminator(out)
            terms = self.loss.generator_losses(out, image, mask, lmk_pred, landmarks, d_fake)
        out = out.float()
        return {
            **{k: terms[k] for k in LOSS_NAMES},
            "psnr_hole": metrics.psnr(out, image, mask),
            "ssim_hole": metrics.ssim(out.clamp(0, 1), image, mask),
            "l1_hole": metrics.mae(out, image, mask),
            "nme": metrics.nme(lmk_pred, landmarks),
        }

    def validate(self) -> dict[str, float]:
        """Loss terms, validation loss, PSNR / SSIM / L1 inside the hole (RGB) and landmark NME,
        averaged over the validation images (sharded over ranks, summed with all-reduce)."""
        assert self.val_data is not None
        tc = self.config.train
        loader = val_loader(self.val_data, tc.batch_size, limit=tc.val_max_images,
                            rank=self.dist.rank, world_size=self.dist.world_size,
                            workers=self.config.data.num_workers,
                            pin_memory=self.device.type == "cuda")
        self.calibrate()
        keys = list(LOSS_NAMES) + list(VAL_METRICS)
        sums = torch.zeros(len(keys), dtype=torch.float64, device=self.device)
        counts = torch.zeros(len(keys), dtype=torch.float64, device=self.device)
        self.generator.eval()
        self.discriminator.eval()
        try:
            for batch in loader:
                values = self.evaluate_batch(*self.to_device(*batch))
                for i, key in enumerate(keys):
                    value = values[key].double()
                    if value.ndim == 0:  # a batch mean: weight by the batch size
                        n = batch[0].shape[0]
                        sums[i] += value * n
                        counts[i] += n
                    else:  # per image; masked metrics of empty holes are NaN and skipped
                        valid = ~value.isnan()
                        sums[i] += value[valid].sum()
                        counts[i] += valid.sum()
        finally:
            self.generator.train()
            self.discriminator.train()
        distributed.all_reduce_sum(sums)
        distributed.all_reduce_sum(counts)
        means = (sums / counts.clamp_min(1)).tolist()
        result = {k: (v if c > 0 else math.nan) for k, v, c in zip(keys, means, counts.tolist())}
        result["loss"] = validation_loss(result, self.config.loss)
        result["images"] = float(counts[keys.index("nme")].item())
        return result

    @torch.no_grad()
    def sample_grid(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The TensorBoard image for a few faces of `batch` (see `inclg.train.samples`)."""
        image, landmarks, mask = (t[:SAMPLE_FACES] for t in self.to_device(*batch))
        self.calibrate()
        generator = self.inference_generator
        generator.eval()
        try:
            with self.autocast():
                masked = masked_input(image, mask)
                out, lmk_pred = generator(masked, mask)
        finally:
            self.generator.train()
        out = out.float()
        return sample_grid(masked, out, composite(out, image, mask), image, lmk_pred, landmarks)

    # --- state -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The resume state besides the weights (see `inclg.train.checkpoint`)."""
        return {
            "iteration": self.iteration,
            "samples_seen": self.samples_seen,
            "world_size": self.dist.world_size,
            "optimizer_g": self.g_optimizer.state_dict(),
            "optimizer_d": self.d_optimizer.state_dict(),
            "scheduler_g": self.g_scheduler.state_dict(),
            "scheduler_d": self.d_scheduler.state_dict(),
            "rng": ckpt.rng_state(self.device),
            "best_val_loss": self.best_val_loss,
            "best_val_weights": self._val_weights(),
            "train_seconds": self.elapsed_seconds(),
            "validation_history": self.validation_history,
        }

    def _val_weights(self) -> dict[str, float]:
        return {k: float(getattr(self.config.loss, k)) for k in VAL_LOSS_TERMS}

    def elapsed_seconds(self) -> float:
        """Wall-clock seconds spent in `fit` over the whole run, resumes included: the
        training-cost figure of a model card."""
        running = time.perf_counter() - self._clock if self._clock is not None else 0.0
        return self.train_seconds + running

    def load(self, checkpoint: ckpt.Checkpoint) -> None:
        """Continue exactly where `checkpoint` stopped: weights, optimisers, schedules, RNGs,
        iteration and sample-stream position."""
        checkpoint.load_models(self.generator, self.discriminator)
        if self.generator_ema is not None:
            if checkpoint.generator_ema is not None:
                checkpoint.load_ema(self.generator_ema.module)
                self.generator_ema.n_averaged.fill_(1)  # resumed, not started from the live weights
            else:  # a run that gains the average on resume starts it from the loaded weights
                self.generator_ema.n_averaged.zero_()
        state = checkpoint.state
        self.g_optimizer.load_state_dict(state["optimizer_g"])
        self.d_optimizer.load_state_dict(state["optimizer_d"])
        self.g_scheduler.load_state_dict(state["scheduler_g"])
        self.d_scheduler.load_state_dict(state["scheduler_d"])
        for scheduler in (self.g_scheduler, self.d_scheduler):  # the config's schedule from here on
            scheduler.milestones = Counter(self.config.train.lr_milestones)
            scheduler.gamma = self.config.train.lr_decay
        ckpt.set_rng_state(state["rng"], self.device)
        self.iteration = int(state["iteration"])
        self.samples_seen = int(state["samples_seen"])
        self.best_val_loss = float(state["best_val_loss"])
        if state.get("best_val_weights") != self._val_weights():
            # the validation loss is a weighted sum: a best score under other weights is no
            # yardstick, so the next validation sets a new best
            self.best_val_loss = math.inf
        self.train_seconds = float(state.get("train_seconds", 0.0))  # absent before 2026-12
        self.validation_history = list(state.get("validation_history", []))  # idem
        self.checkpointer.loaded(self.iteration, checkpoint.path)

    def save(self, best: bool = False) -> Path | None:
        """Checkpoint the current iteration (once; rank 0 only, others return None), marked as
        the best if asked; old ones are pruned (see `CheckpointManager`)."""
        self.calibrate()
        info = None
        if self._validated is not None and self._validated[0] == self.iteration:
            info = {"validation": self._validated[1]}
        ema = None if self.generator_ema is None else self.generator_ema.module
        return self.checkpointer.save(self.iteration, self.generator, self.discriminator,
                                      self.state, self.config, info,
                                      best_loss=self.best_val_loss if best else None,
                                      generator_ema=ema)

    # --- the loop --------------------------------------------------------------------------

    def fit(self, on_progress: Callable[[Progress], None] | None = None,
            on_validation: Callable[[int, dict[str, float]], None] | None = None) -> FitResult:
        """Train until ``train.max_iterations`` or a SIGINT/SIGTERM (then checkpoint and return).

        `on_progress` is called after every iteration; `on_validation(iteration, results)` after
        every validation (the Optuna search reports and prunes from there: an exception raised in
        it ends the run without a checkpoint).
        """
        if self.train_data is None:
            raise ValueError("Trainer.fit needs train_data")
        tc = self.config.train
        result = FitResult(self.iteration)
        if self.write:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.config.save(self.run_dir / "config.yaml")
        batches = iter(train_loader(self.train_data, tc.batch_size, tc.seed, rank=self.dist.rank,
                                    world_size=self.dist.world_size, start=self.samples_seen,
                                    workers=self.config.data.num_workers,
                                    pin_memory=self.device.type == "cuda"))
        fixed_samples = self._fixed_samples()
        self._log = RunLog(self.run_dir if self.write else None, self.device, self.iteration)
        self._clock = started = time.perf_counter()
        first_iteration = self.iteration
        stop = _StopSignal() if self.handle_signals else contextlib.nullcontext(None)
        try:
            with stop as signals:
                while self.iteration < tc.max_iterations:
                    batch = next(batches)
                    self._log.add_losses(self.train_step(*self.to_device(*batch)))
                    it = self.iteration
                    scalars = self._log_scalars() if self._due(tc.log_every, True) else None
                    if self.val_data is not None and self._due(tc.val_every, True):
                        self._validation_step(result, on_validation)
                    if self._due(tc.sample_every):
                        self._log.image("samples", self.sample_grid(fixed_samples or batch), it)
                    if self._due(tc.checkpoint_every):
                        result.checkpoint = self.save() or result.checkpoint
                    if on_progress is not None:
                        on_progress(Progress(it, tc.max_iterations, self.global_batch, scalars))
                    if self._should_stop(signals, it):
                        result.interrupted = True
                        break
            if not self.checkpointer.saved(self.iteration):
                result.checkpoint = self.save() or result.checkpoint
            distributed.barrier()
        finally:
            self._log.close()
            self.train_seconds, self._clock = self.elapsed_seconds(), None
        elapsed = time.perf_counter() - started
        done = self.iteration - first_iteration
        result.iteration = self.iteration
        result.images_per_second = done * self.global_batch / elapsed if done else 0.0
        result.best = self.checkpointer.best()
        if result.interrupted:
            log.info("stopped by signal at iteration %d", self.iteration)
        return result

    def _due(self, every: int, at_end: bool = False) -> bool:
        """Whether an every-N-iterations job runs now (`at_end`: also after the last iteration)."""
        last = at_end and self.iteration == self.config.train.max_iterations
        return every > 0 and (self.iteration % every == 0 or last)

    def _should_stop(self, signals: _StopSignal | None, iteration: int) -> bool:
        flag = signals is not None and signals.received is not None
        if not self.dist.distributed:
            return flag
        if iteration % STOP_CHECK_EVERY and iteration != self.config.train.max_iterations:
            return False
        return distributed.any_rank(flag, self.device)

    def _fixed_samples(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """The first validation faces, shown in every sample grid so progress is comparable."""
        if not self.write or self.val_data is None or self.config.train.sample_every <= 0:
            return None
        count = min(SAMPLE_FACES, len(self.val_data))  # type: ignore[arg-type]
        items = [self.val_data[i] for i in range(count)]
        return tuple(torch.stack(column) for column in zip(*items))  # type: ignore[return-value]

    def _validation_step(self, result: FitResult,
                         on_validation: Callable[[int, dict[str, float]], None] | None) -> None:
        values = self.validate()
        it = self.iteration
        self._validated = (it, values)
        self.validation_history.append({**values, "iteration": float(it),
                                        "samples_seen": float(self.samples_seen)})
        result.validation = values
        result.history.append((it, values))
        if self._log is not None:
            self._log.scalars({f"val/{key}": value for key, value in values.items()}, it)
        log.info("validation at %d: loss %.4f, PSNR %.2f dB, SSIM %.4f, NME %.4f", it,
                 values["loss"], values["psnr_hole"], values["ssim_hole"], values["nme"])
        if values["loss"] < self.best_val_loss:
            self.best_val_loss = values["loss"]
            result.checkpoint = self.save(best=True) or result.checkpoint
        if on_validation is not None:
            on_validation(it, values)

    def _log_scalars(self) -> dict[str, float]:
        """Loss means since the last log, LRs, gammas and speed (one host sync)."""
        extra = {
            "lr/generator": self.g_optimizer.param_groups[0]["lr"],
            "lr/discriminator": self.d_optimizer.param_groups[0]["lr"],
            "gamma/landmark": float(self.generator.landmark_gamma.item()),
            "gamma/attention": float(self.generator.attention.gamma.item()),
            "alpha/attention": float(self.generator.attention.alpha.item()),
        }
        assert self._log is not None
        return self._log.flush_losses(self.iteration, self.global_batch, extra)


def configure_backends(device: torch.device) -> None:
    """Process-wide GPU kernel choices for training (cuDNN autotuning, TF32 matmuls): set by the
    `inclg train` command and the training benchmark, never by constructing a `Trainer`."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def build_datasets(config: Config) -> tuple[Dataset, Dataset | None]:
    """The training and (if its lists are configured) validation datasets of ``config.data``."""
    from inclg.data.dataset import FaceDataset
    from inclg.data.memory import MemoryFaceDataset

    has_val = config.data.val_images is not None and config.data.val_landmarks is not None
    if config.data.in_memory:
        window = config.generator.window
        return (MemoryFaceDataset.from_config(config.data, window, "train"),
                MemoryFaceDataset.from_config(config.data, window, "val") if has_val else None)
    if config.generator.window is not None:
        raise TrainingError("generator.window needs data.in_memory: true (the file-reading "
                            "dataset yields whole crops)")
    train = FaceDataset.from_config(config.data, "train")
    return train, FaceDataset.from_config(config.data, "val") if has_val else None


def train(config: Config, *, resume: str | Path | None = None,
          on_progress: Callable[[Progress], None] | None = None,
          feature_net: VGGFeatures | None = None) -> FitResult:
    """`inclg train`: join torchrun if launched by it, build everything, resume, fit, clean up."""
    info = distributed.init(config.train.device)
    configure_backends(info.device)
    try:
        run_dir = Path(config.train.run_dir)
        path = ckpt.resolve_resume(resume, run_dir)
        checkpoint = ckpt.load_checkpoint(path) if path is not None else None
        train_data, val_data = build_datasets(config)
        trainer = Trainer(config, dist=info, feature_net=feature_net, train_data=train_data,
                          val_data=val_data, run_dir=run_dir)
        if checkpoint is not None:
            trainer.load(checkpoint)
            log.info("resumed from %s at iteration %d", checkpoint.path, trainer.iteration)
        return trainer.fit(on_progress)
    finally:
        distributed.cleanup()
