"""`inclg evaluate`: run the model(s) and baselines on prepared aligned crops and score them.

Inputs are the 256x256 crops of ``inclg data faces`` with their landmark files (ground truth for
the landmark NME and for landmark-driven masks). Every image is evaluated under its mask from a
list (paired by index, cycling) and/or under each landmark mask kind. Results are grouped by hole
ratio (0-20, 20-40, 40-60 %; plus "all" over the list masks) and by mask kind.

A metric whose weights are missing (LPIPS, FID) is reported as unavailable with the reason; the
other metrics still run. Every image's scores are kept (`EvalResult.per_image`, the report's CSV);
group means come with a 95 % confidence half-width (Student's t over the images).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inclg.data import DataError
from inclg.io.images import load_mask, load_rgb
from inclg.data.landmarks import load_landmarks
from inclg.data.masks import RATIO_GROUPS, MaskKind, hole_ratio, landmark_mask, ratio_group
from inclg.evaluate import metrics
from inclg.evaluate.baselines import BASELINES, inpaint_baseline
from inclg.evaluate.fid import MIN_IMAGES, fid_from_features, inception_features
from inclg.weights.inception import load_inception
from inclg.weights.lpips import load_lpips
from inclg.model.io import WeightsError
from inclg.model.masking import composite, masked_input
from inclg.weights import load_model

GROUP_NAMES = tuple(f"{round(lo * 100)}-{round(hi * 100)}%" for lo, hi in RATIO_GROUPS)
ALL_LIST = "all (mask list)"
METRICS = ("psnr", "psnr_hole", "ssim", "ssim_hole", "l1", "l1_hole", "lpips", "nme", "fid")
PREPARE_HINT = ("evaluation runs on aligned 256x256 face crops with their landmark files; prepare "
                "ordinary photos first with `inclg data faces PHOTOS --out PREPARED` and `inclg "
                "data split PREPARED`, then pass --images PREPARED/lists/test_images.flist")
# Student's t quantile 0.975 for 1..30 degrees of freedom (beyond: the normal 1.96).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def ci95(values: Sequence[float] | np.ndarray) -> float | None:
    """Half-width of the 95 % confidence interval of the mean of `values` (NaNs ignored; None
    below 2 values): t(0.975, n-1) x sd / sqrt(n)."""
    x = np.asarray(values, np.float64)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return None
    t = _T975[x.size - 2] if x.size - 1 <= len(_T975) else 1.96
    return float(t * x.std(ddof=1) / np.sqrt(x.size))
Method = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


def landmarks_path_for(image: Path) -> Path:
    """``.../images/<src>/<name>.png`` -> ``.../landmarks/<src>/<name>.txt`` (prepared layout)."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "landmarks"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


@dataclass(frozen=True)
class Case:
    """One image under one mask."""

    image: Path
    landmarks: Path | None
    mask: Path | str  # a mask file or a landmark mask kind
    groups: tuple[str, ...]


@dataclass
class EvalOptions:
    """What `evaluate` runs; see the CLI help for each field."""

    images: Sequence[Path]
    masks: Sequence[Path] = ()
    auto_masks: Sequence[str] = ()
    landmarks: Sequence[Path] | None = None
    weights: Sequence[str | Path] = ("default",)
    baselines: Sequence[str] = ()
    lpips_weights: Path | None = None
    fid_model: Path | None = None
    limit: int | None = None
    batch_size: int = 8
    figure_rows: int = 6
    device: str = "cpu"


@dataclass
class MethodInfo:
    """A row of the tables."""

    name: str
    kind: str  # "model" or "baseline"
    trained: bool | None = None
    model_id: str | None = None
    source: str | None = None
    run: Method | None = field(default=None, repr=False)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "trained": self.trained, "model_id": self.model_id,
                "source": self.source}


@dataclass
class EvalResult:
    """Everything the report needs."""

    methods: list[MethodInfo]
    groups: dict[str, dict[str, Any]]  # group -> {"count", "methods": {name: {metric: value}}}
    unavailable: dict[str, str]  # metric -> why it was not computed
    figure: list[dict[str, Any]]  # rows: {"input", "outputs": {name: img}, "truth", "label"}
    image_size: int
    per_image: list[dict[str, Any]] = field(default_factory=list)  # one row per case and method


def plan_cases(options: EvalOptions) -> tuple[list[Case], bool]:
    """The (image, mask) pairs to evaluate, and whether ground-truth landmarks exist for all."""
    images = list(options.images)[: options.limit]
    if not images:
        raise DataError("the image list is empty")
    if not options.masks and not options.auto_masks:
        raise DataError("give a mask list or at least one landmark mask kind (--auto-mask)")
    kinds = [MaskKind.parse(k, "--auto-mask kind").value for k in options.auto_masks]
    _check_crop(images[0])
    if options.landmarks is not None:
        marks: list[Path | None] = list(options.landmarks)[: len(images)]
        if len(marks) < len(images):
            raise DataError(f"{len(marks)} landmark files for {len(images)} images")
    else:
        marks = [landmarks_path_for(p) for p in images]
    have_marks = all(m is not None and m.is_file() for m in marks)
    if options.auto_masks and not have_marks:
        missing = next(m for m in marks if m is None or not m.is_file())
        raise DataError(f"--auto-mask needs ground-truth landmarks and {missing} does not exist: "
                        f"{PREPARE_HINT} (or give --landmarks LIST)")
    cases = []
    for i, image in enumerate(images):
        mark = marks[i] if have_marks else None
        if options.masks:
            cases.append(Case(image, mark, options.masks[i % len(options.masks)], ()))
        for kind in kinds:
            cases.append(Case(image, mark, kind, (kind,)))
    return cases, have_marks


def _check_crop(image: Path) -> None:
    """Refuse a list of ordinary photos up front (from the first file's header)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(image) as img:
            w, h = img.size
    except FileNotFoundError:
        raise DataError(f"{image}: no such image (the first of the list)") from None
    except (OSError, UnidentifiedImageError):
        return  # unreadable: _load_case says so with the reason
    if w != h or h % 4:
        raise DataError(f"{image}: {w}x{h} is not an aligned face crop; {PREPARE_HINT}")


def build_methods(options: EvalOptions) -> list[MethodInfo]:
    """Load every model folder (or the bundled default) and name the baselines."""
    methods: list[MethodInfo] = []
    for spec in options.weights:
        loaded = load_model(spec, options.device)
        name = "inclg (default)" if str(spec) == "default" else Path(spec).resolve().name
        while any(m.name == name for m in methods):
            name += "'"
        generator = loaded.generator

        def run(image: torch.Tensor, mask: torch.Tensor, g: Any = generator) -> tuple[
                torch.Tensor, torch.Tensor]:
            with torch.no_grad():
                try:
                    out, points = g.inpaint(image, mask)
                except ValueError as err:  # holes outside a windowed model's region
                    raise DataError(f"model {loaded.model_id}: {err}; evaluate it with "
                                    "landmark masks (--auto-mask) inside its window") from None
            return composite(out.float(), image, mask), points.float()

        methods.append(MethodInfo(name, "model", loaded.trained, loaded.model_id, loaded.source,
                                  run))
    for base in options.baselines:
        if base not in BASELINES:
            raise DataError(f"unknown baseline {base!r}; choose from {', '.join(BASELINES)}")

        def run_base(image: torch.Tensor, mask: torch.Tensor, b: str = base) -> tuple[
                torch.Tensor, None]:
            return inpaint_baseline(b, image, mask), None

        methods.append(MethodInfo(base, "baseline", run=run_base))
    return methods


def _load_case(case: Case, size: int | None) -> tuple[torch.Tensor, torch.Tensor,
                                                       torch.Tensor | None, float]:
    rgb = load_rgb(case.image)
    h, w = rgb.shape[:2]
    if h != w or h % 4 or (size is not None and h != size):
        want = f"{size}x{size}" if size else "square, a multiple of 4"
        raise DataError(f"{case.image}: {w}x{h} image; evaluation needs aligned crops ({want}); "
                        f"{PREPARE_HINT}")
    points = load_landmarks(case.landmarks) if case.landmarks is not None else None
    if isinstance(case.mask, Path):
        mask = load_mask(case.mask, h)
    else:
        assert points is not None  # plan_cases checked the landmarks exist
        mask = landmark_mask(case.mask, points, h)
    image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    lmk = torch.from_numpy(points) if points is not None else None
    return image, torch.from_numpy(mask)[None], lmk, hole_ratio(mask)


def _groups_of(case: Case, ratio: float) -> tuple[str, ...]:
    if not isinstance(case.mask, Path):
        return case.groups
    group = ratio_group(ratio)
    return (ALL_LIST,) if group is None else (GROUP_NAMES[group], ALL_LIST)


def _figure_picks(cases: list[Case], rows: int) -> set[int]:
    """Case indices for the figure: round robin over mask kinds / list, first images first."""
    by_kind: dict[str, list[int]] = defaultdict(list)
    for i, case in enumerate(cases):
        by_kind[case.mask if isinstance(case.mask, str) else "list"].append(i)
    picks: list[int] = []
    queues = list(by_kind.values())
    while len(picks) < rows and any(queues):
        for queue in queues:
            if queue and len(picks) < rows:
                picks.append(queue.pop(0))
    return set(picks)


def evaluate(options: EvalOptions,
             progress: Callable[[int, int], None] | None = None) -> EvalResult:
    """Score every method on every case and aggregate per group; `progress(done, total)` is
    called after every batch of cases (the CLI's progress bar)."""
    cases, have_marks = plan_cases(options)
    methods = build_methods(options)
    unavailable: dict[str, str] = {}
    lpips_net = fid_net = None
    try:
        lpips_net = load_lpips(options.lpips_weights).to(options.device)
    except (WeightsError, FileNotFoundError) as err:
        unavailable["lpips"] = str(err)
    try:
        fid_net = load_inception(options.fid_model, options.device)
    except (WeightsError, FileNotFoundError, RuntimeError) as err:
        unavailable["fid"] = str(err)
    if not have_marks:
        unavailable["nme"] = ("no ground-truth landmark files (expected landmarks/<src>/<name>.txt "
                              "beside images/, or give --landmarks LIST)")
    elif not any(m.kind == "model" for m in methods):
        unavailable["nme"] = "no model in the comparison (baselines predict no landmarks)"

    picks = _figure_picks(cases, options.figure_rows)
    per_case: dict[str, dict[str, list[float]]] = {m.name: defaultdict(list) for m in methods}
    features: dict[str, list[np.ndarray]] = defaultdict(list)  # method or "real" -> [N, 2048]
    case_groups: list[tuple[str, ...]] = []
    case_ratios: list[float] = []
    figure: list[dict[str, Any]] = []
    size: int | None = None
    for start in range(0, len(cases), options.batch_size):
        batch = cases[start : start + options.batch_size]
        loaded = []
        for case in batch:
            loaded.append(_load_case(case, size))
            size = loaded[-1][0].shape[-1]
        image = torch.stack([x[0] for x in loaded]).to(options.device)  # [B, 3, H, W]
        mask = torch.stack([x[1] for x in loaded]).to(options.device)  # [B, 1, H, W]
        truth = (torch.stack([x[2] for x in loaded]) if have_marks else None)  # [B, 68, 2]
        case_groups += [_groups_of(c, x[3]) for c, x in zip(batch, loaded, strict=True)]
        case_ratios += [x[3] for x in loaded]
        if fid_net is not None:
            features["real"].append(inception_features(fid_net, image))
        outputs = {}
        reference = lpips_net.features(image) if lpips_net is not None else None
        for method in methods:
            assert method.run is not None
            out, points = method.run(image, mask)
            outputs[method.name] = out
            scores = per_case[method.name]
            scores["psnr"] += metrics.psnr(out, image).tolist()
            scores["psnr_hole"] += metrics.psnr(out, image, mask).tolist()
            scores["ssim"] += metrics.ssim(out, image).tolist()
            scores["ssim_hole"] += metrics.ssim(out, image, mask).tolist()
            scores["l1"] += metrics.mae(out, image).tolist()
            scores["l1_hole"] += metrics.mae(out, image, mask).tolist()
            if lpips_net is not None:
                scores["lpips"] += lpips_net.distance(lpips_net.features(out),
                                                      reference).tolist()
            if points is not None and truth is not None:
                scores["nme"] += metrics.nme(points.cpu(), truth).tolist()
            if fid_net is not None:
                features[method.name].append(inception_features(fid_net, out))
        for j, case in enumerate(batch):
            if start + j in picks:
                label = case.mask if isinstance(case.mask, str) else f"{loaded[j][3]:.0%} hole"
                figure.append({"input": masked_input(image[j], mask[j]).cpu(),
                               "outputs": {k: v[j].cpu() for k, v in outputs.items()},
                               "truth": image[j].cpu(), "label": f"{case.image.stem} {label}"})
        if progress is not None:
            progress(start + len(batch), len(cases))

    stacked = {k: np.concatenate(v) for k, v in features.items()}
    groups: dict[str, dict[str, Any]] = {}
    order = [*GROUP_NAMES, ALL_LIST, *options.auto_masks]
    for group in order:
        index = [i for i, g in enumerate(case_groups) if group in g]
        if not index:
            continue
        entry: dict[str, Any] = {"count": len(index), "methods": {}, "ci95": {}, "notes": {}}
        for method in methods:
            row: dict[str, float | None] = {}
            half: dict[str, float | None] = {}
            for name, values in per_case[method.name].items():
                picked = np.asarray(values, np.float64)[index]
                row[name] = None if np.isnan(picked).all() else float(np.nanmean(picked))
                half[name] = ci95(picked)
            entry["ci95"][method.name] = half
            if fid_net is not None and len(index) >= MIN_IMAGES:
                row["fid"] = fid_from_features(stacked["real"][index], stacked[method.name][index])
            entry["methods"][method.name] = row
        if fid_net is not None and len(index) < MIN_IMAGES:
            entry["notes"]["fid"] = f"undefined for fewer than {MIN_IMAGES} images"
        groups[group] = entry
    per_image = []
    for i, case in enumerate(cases):
        for method in methods:
            row_i: dict[str, Any] = {
                "image": str(case.image), "mask": str(case.mask),
                "hole_ratio": round(case_ratios[i], 5), "groups": list(case_groups[i]),
                "method": method.name}
            for name, values in per_case[method.name].items():
                if len(values) == len(cases):
                    row_i[name] = float(values[i])
            per_image.append(row_i)
    return EvalResult(methods, groups, unavailable, figure, size or 0, per_image)
