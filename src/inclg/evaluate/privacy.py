"""`inclg audit privacy`: membership inference against an inpainting model (`audit`).

An attacker who can run the model and holds a face asks: "was this face in the training set?".
A model that memorised its training faces reconstructs their holes better than those of unseen
faces. For each face we measure, averaged over K fixed masks, the model's L1 error inside the hole
and its landmark NME, and run three attacks (higher score = "member"):

- loss-threshold on the reconstruction error (score = -L1 in the hole);
- loss-threshold on the landmark error (score = -NME), when ground-truth landmarks exist;
- calibrated reconstruction: the model's error relative to how hard the face is to inpaint at all,
  measured by OpenCV Telea's error on the same masks (score = log L1_telea - log L1_model). A
  simple baseline needs no second trained model, cannot have seen the training set, and removes
  most of the per-face difficulty (smooth skin vs. a beard) that makes the raw loss noisy.

Each attack reports ROC AUC and the TPR at 1 % FPR, with stratified bootstrap 95 % intervals.
`audit` runs the whole audit and `write_audit` writes privacy.json and privacy.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inclg.data.kinds import MaskKind
from inclg.data.landmarks import load_landmarks
from inclg.data.masks import free_form_mask
from inclg.errors import DataError
from inclg.evaluate import metrics
from inclg.evaluate.baselines import inpaint_baseline
from inclg.io.files import atomic_write_text
from inclg.io.images import load_mask, load_rgb
from inclg.model.generator import Generator
from inclg.model.masking import composite

TARGET_FPR = 0.01


@dataclass(frozen=True)
class FaceErrors:
    """Per-face errors [N], each averaged over the masks."""

    l1: np.ndarray  # the model's L1 inside the hole
    reference: np.ndarray  # Telea's L1 inside the hole (difficulty)
    nme: np.ndarray | None  # landmark NME, if ground truth was given


@torch.no_grad()
def face_errors(generator: Generator, images: torch.Tensor, masks: torch.Tensor,
                landmarks: torch.Tensor | None = None, batch_size: int = 8) -> FaceErrors:
    """Errors of [N, 3, H, W] faces under each of K masks: [K, 1, H, W] shared by every face, or
    [N, K, 1, H, W] per face (landmark-drawn); [N, 68, 2] landmarks for the NME."""
    device = next(generator.parameters()).device
    per_face = masks.dim() == 5
    l1, ref, nme = [], [], []
    for start in range(0, len(images), batch_size):
        image = images[start : start + batch_size].to(device)
        per_mask_l1, per_mask_ref, per_mask_nme = [], [], []
        for k in range(masks.shape[1] if per_face else masks.shape[0]):
            m = (masks[start : start + batch_size, k] if per_face  # [B, 1, H, W]
                 else masks[k].expand(len(image), -1, -1, -1)).to(device)
            out, points = generator.inpaint(image, m)
            per_mask_l1.append(metrics.mae(composite(out.float(), image, m), image, m))
            per_mask_ref.append(metrics.mae(inpaint_baseline("telea", image, m), image, m))
            if landmarks is not None:
                truth = landmarks[start : start + batch_size].to(device)
                per_mask_nme.append(metrics.nme(points.float(), truth))
        l1.append(torch.stack(per_mask_l1).mean(0))
        ref.append(torch.stack(per_mask_ref).mean(0))
        if per_mask_nme:
            nme.append(torch.stack(per_mask_nme).mean(0))
    return FaceErrors(torch.cat(l1).cpu().double().numpy(), torch.cat(ref).cpu().double().numpy(),
                      torch.cat(nme).cpu().double().numpy() if nme else None)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (scipy.stats.rankdata's default)."""
    order = np.argsort(values, kind="mergesort")
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(first + (counts + 1) / 2, counts)
    return ranks


def roc_auc(members: np.ndarray, non_members: np.ndarray) -> float:
    """P(score of a random member > that of a random non-member), ties counting 1/2
    (the Mann-Whitney form of the ROC AUC)."""
    ranks = _average_ranks(np.concatenate([members, non_members]))
    n_m, n_n = len(members), len(non_members)
    return float((ranks[:n_m].sum() - n_m * (n_m + 1) / 2) / (n_m * n_n))


def tpr_at_fpr(members: np.ndarray, non_members: np.ndarray, fpr: float = TARGET_FPR) -> float:
    """Highest TPR of the rule "member if score >= t" over thresholds whose FPR is <= `fpr`."""
    ordered = np.sort(non_members)[::-1]
    allowed = int(np.floor(fpr * len(ordered) + 1e-9))  # false positives tolerated
    if allowed >= len(ordered):
        return 1.0
    return float((members > ordered[allowed]).mean())


@dataclass(frozen=True)
class AttackResult:
    """One attack's scores with bootstrap 95 % intervals."""

    name: str
    score: str
    auc: float
    auc_ci: tuple[float, float]
    tpr_at_1_fpr: float
    tpr_ci: tuple[float, float]


def run_attack(name: str, score: str, members: np.ndarray, non_members: np.ndarray,
               resamples: int = 1000, seed: int = 0) -> AttackResult:
    """AUC and TPR at 1 % FPR with percentile intervals from a stratified, seeded bootstrap."""
    rng = np.random.default_rng(seed)
    aucs, tprs = np.empty(resamples), np.empty(resamples)
    for b in range(resamples):
        m = members[rng.integers(0, len(members), len(members))]
        n = non_members[rng.integers(0, len(non_members), len(non_members))]
        aucs[b], tprs[b] = roc_auc(m, n), tpr_at_fpr(m, n)

    def ci(values: np.ndarray) -> tuple[float, float]:
        lo, hi = np.percentile(values, [2.5, 97.5])
        return float(lo), float(hi)

    return AttackResult(name, score, roc_auc(members, non_members), ci(aucs),
                        tpr_at_fpr(members, non_members), ci(tprs))


def attacks(members: FaceErrors, non_members: FaceErrors, resamples: int = 1000,
            seed: int = 0) -> list[AttackResult]:
    """Every attack the errors allow (the NME one needs landmarks for both sets)."""
    found = [
        run_attack("loss-threshold (reconstruction)", "-L1 in the hole",
                   -members.l1, -non_members.l1, resamples, seed),
        run_attack("calibrated (reconstruction vs. Telea)", "log L1_telea - log L1_model",
                   np.log(members.reference + 1e-8) - np.log(members.l1 + 1e-8),
                   np.log(non_members.reference + 1e-8) - np.log(non_members.l1 + 1e-8),
                   resamples, seed),
    ]
    if members.nme is not None and non_members.nme is not None:
        found.insert(1, run_attack("loss-threshold (landmarks)", "-NME",
                                   -members.nme, -non_members.nme, resamples, seed))
    return found


def verdict(result: AttackResult) -> str:
    """One plain sentence on what the interval says."""
    lo, hi = result.auc_ci
    if lo > 0.5:
        return ("leakage detected: the attack tells training faces from unseen ones better than "
                "chance")
    if hi < 0.5:
        return "below chance (members look *less* familiar); no evidence of memorisation"
    return "no detectable leakage at this sample size (the interval includes chance, 0.5)"


def load_faces(paths: list[Path], landmark_paths: list[Path] | None) -> tuple[
        torch.Tensor, torch.Tensor | None]:
    """[N, 3, S, S] images in [0, 1] and, if every file exists, [N, 68, 2] landmarks."""
    images: list[torch.Tensor] = []
    for path in paths:
        rgb = load_rgb(path)
        first = tuple(images[0].shape[1:]) if images else rgb.shape[:2]
        if rgb.shape[0] != rgb.shape[1] or rgb.shape[0] % 4 or rgb.shape[:2] != first:
            raise DataError(f"{path}: {rgb.shape[1]}x{rgb.shape[0]}; the audit needs aligned "
                            "square crops of one size (from `inclg data faces`)")
        images.append(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
    marks = None
    if landmark_paths is not None and all(p.is_file() for p in landmark_paths):
        marks = torch.stack([torch.from_numpy(load_landmarks(p)) for p in landmark_paths])
    return torch.stack(images), marks


def audit_masks(size: int, count: int, seed: int = 0,
                mask_paths: list[Path] | None = None) -> torch.Tensor:
    """[K, 1, S, S] fixed masks: the first K of a list, else seeded free-form strokes (10-40 %)."""
    if mask_paths:
        chosen = [load_mask(p, size) for p in mask_paths[:count]]
    else:
        rng = np.random.default_rng(seed)
        chosen = [free_form_mask(size, rng, (0.1, 0.4)) for _ in range(count)]
    return torch.from_numpy(np.stack(chosen))[:, None]


def landmark_audit_masks(landmarks: torch.Tensor, kinds: list[str], size: int) -> torch.Tensor:
    """[N, K, 1, S, S]: each face's own landmark masks (lip, clefts, nose), one per kind; the
    holes a clinician would draw, and the only ones a windowed model can fill."""
    from inclg.data.masks import landmark_mask

    return torch.from_numpy(np.stack([
        np.stack([landmark_mask(kind, points.numpy(), size) for kind in kinds])
        for points in landmarks]))[:, :, None]


def interpretation(n_members: int, n_non_members: int) -> list[str]:
    """What AUC and TPR at 1 % FPR mean, for the report."""
    note = (f" With {n_non_members} unseen faces, 1 % FPR allows "
            f"{int(np.floor(TARGET_FPR * n_non_members + 1e-9))} false alarm(s), so this number "
            "is coarse." if n_non_members < 300 else "")
    return [
        ("**AUC** is the probability that the attack ranks a random training face as more "
        "'familiar' than a random unseen face. 0.5 means the model behaves the same on both "
        "(no detectable leakage); 1.0 means every training face is recognised."),
        "**TPR at 1 % FPR** is the share of training faces the attacker identifies while wrongly "
        "accusing at most 1 % of unseen faces; by chance it is about 1 %. It measures whether "
        "*some* individuals are confidently exposed, which an average like AUC can hide." + note,
        (f"Intervals are 95 % percentile bootstrap intervals ({n_members} members, "
        f"{n_non_members} non-members resampled separately). A small audit can miss weak "
        "leakage: 'no detectable leakage' is not proof of privacy."),
    ]


def to_json(results: list[AttackResult], info: dict[str, Any]) -> dict[str, Any]:
    """The privacy.json document."""
    return {**info, "attacks": [{**asdict(r), "verdict": verdict(r)} for r in results]}


def to_markdown(results: list[AttackResult], info: dict[str, Any]) -> str:
    """The privacy.md report."""
    masks = (f"landmark masks per face: {', '.join(info['masks'])}."
             if isinstance(info["masks"], list) else f"{info['masks']} masks per face.")
    lines = ["# INCLG membership-inference audit", "", f"Command: `{info['command']}`", "",
             (f"Model: `{info['model_id']}` ({'trained' if info['trained'] else 'UNTRAINED'}); "
              f"{info['members']} members, {info['non_members']} non-members, {masks}"), "",
             "| attack | score | AUC [95 % CI] | TPR @ 1 % FPR [95 % CI] | verdict |",
             "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.name} | {r.score} | {r.auc:.3f} [{r.auc_ci[0]:.3f}, {r.auc_ci[1]:.3f}]"
                     f" | {r.tpr_at_1_fpr:.3f} [{r.tpr_ci[0]:.3f}, {r.tpr_ci[1]:.3f}] | "
                     f"{verdict(r)} |")
    lines += ["", "## What this means", ""]
    lines += [f"- {text}" for text in interpretation(info["members"], info["non_members"])]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Audit:
    """A finished audit: each attack's result, what was audited (`info`, the reports' header),
    and the model's warning (an untrained model)."""

    attacks: list[AttackResult]
    info: dict[str, Any]
    warning: str | None


def audit(weights: str | Path, members: Sequence[Path], non_members: Sequence[Path], *,
          masks: Sequence[Path] | None = None, num_masks: int = 4,
          auto_masks: Sequence[MaskKind | str] = (), limit: int | None = None, seed: int = 0,
          device: str = "cpu", command: str = "") -> Audit:
    """Membership inference against the model in `weights` (a folder or "default"): `members`
    are aligned crops it trained on, `non_members` crops it never saw (same source and
    preparation), at most `limit` of each.

    Every face gets the same `num_masks` masks (the first of `masks`, else seeded free-form
    strokes), or with `auto_masks` its own landmark masks of those kinds (the only holes a
    windowed model fills; landmark files must lie beside the crops). `command` is recorded.
    """
    from inclg.evaluate.runner import landmarks_path_for
    from inclg.weights import load_model

    model = load_model(weights, device)
    kinds = [MaskKind.parse(kind, "audit mask") for kind in auto_masks]
    sets = []
    for label, given in (("members", members), ("non-members", non_members)):
        paths = list(given)[:limit]
        if len(paths) < 2:
            raise DataError(f"{label}: the audit needs at least 2 faces, got {len(paths)}")
        sets.append(load_faces(paths, [landmarks_path_for(p) for p in paths]))
    marks_ok = sets[0][1] is not None and sets[1][1] is not None
    if kinds and not marks_ok:
        raise DataError("landmark masks need a landmark file beside every crop "
                        "(landmarks/<src>/<name>.txt, from `inclg data faces`)")
    size = sets[0][0].shape[-1]
    shared = None if kinds else audit_masks(size, num_masks, seed, list(masks or []) or None)
    errors = []
    for faces, marks in sets:
        holes = shared if shared is not None else landmark_audit_masks(
            marks, [kind.value for kind in kinds], size)
        try:
            errors.append(face_errors(model.generator, faces, holes, marks if marks_ok else None))
        except ValueError as err:  # holes outside a windowed model's region
            raise DataError(f"model {model.model_id}: {err}; audit it with landmark masks "
                            "(--auto-mask)") from None
    info = {"command": command, "model_id": model.model_id, "trained": model.trained,
            "members": len(sets[0][0]), "non_members": len(sets[1][0]),
            "masks": [kind.value for kind in kinds] if kinds else len(shared)}
    return Audit(attacks(errors[0], errors[1], seed=seed), info, model.warning)


def write_audit(result: Audit, out: Path) -> Path:
    """Write privacy.json and privacy.md into `out`; the Markdown report's path."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "privacy.json",
                      json.dumps(to_json(result.attacks, result.info), indent=2) + "\n")
    atomic_write_text(out / "privacy.md", to_markdown(result.attacks, result.info))
    return out / "privacy.md"
