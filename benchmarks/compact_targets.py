"""The bundled model's targets (issue 11), measured on held-out faces and written as JSON + a table.

    python3 benchmarks/compact_targets.py --weights default --limit 500 \
        --out benchmarks/results/compact_targets.json

On `--limit` faces drawn at random (`--seed`) from the test split (never used for training or
model selection; the list holds its CelebA faces first, then UTKFace's, so its first faces would
be adults only), with
the four landmark mask kinds (lip, cleft left / right / bilateral) and OpenCV Telea and
Navier-Stokes next to the model:
- hole PSNR ≥ the best classical baseline + 3.0 dB (lip) / + 1.5 dB (each cleft kind), judged
  on the paired per-face difference (mean and its 95 % interval);
- hole SSIM above, LPIPS (whole crop) below the best baseline in every group;
- landmark NME ≤ 0.05 (outer-eye-corner normalised) on the masked faces;
- with `--audit N`: membership inference on N training faces against N of those test faces with each
  face's own lip and cleft-left masks: every AUC's 95 % interval includes 0.5, or AUC ≤ 0.55;
- with `--speed FILE`: the end-to-end predict speed-up over the paper-size network from
  `benchmarks/predict_speed.py`'s JSON (≥ 5x).
Also reported, not a target: the hole-PSNR margin per mask kind and the NME by age band (UTKFace
file names carry ages; CelebA faces have none), since the patients are mostly infants.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("lip", "cleft-left", "cleft-right", "cleft-bilateral")
PSNR_MARGIN = {"lip": 3.0, "cleft-left": 1.5, "cleft-right": 1.5, "cleft-bilateral": 1.5}
BASELINES = ("telea", "ns")
NME_LIMIT = 0.05
AUDIT_AUC_LIMIT = 0.55
SPEEDUP_TARGET = 5.0


def mean_ci(values: np.ndarray) -> dict[str, float]:
    """Mean and the half-width of its 95 % interval (Student's t), NaNs dropped."""
    from inclg.evaluate.runner import ci95

    values = values[~np.isnan(values)]
    return {"mean": float(values.mean()), "ci95": float(ci95(values) or 0.0), "n": len(values)}


def per_case(rows: list[dict[str, Any]], method: str, kind: str, metric: str) -> np.ndarray:
    """Scores of `method` under mask `kind`, in case order (the same faces for every method)."""
    return np.array([r[metric] if r.get(metric) is not None else np.nan for r in rows
                     if r["method"] == method and r["mask"] == kind], np.float64)


def quality(weights: str, images: list[Path], limit: int) -> tuple[dict[str, Any], str]:
    from inclg.evaluate.runner import EvalOptions, evaluate

    options = EvalOptions(images=images, auto_masks=KINDS, weights=(weights,),
                          baselines=BASELINES, limit=limit)
    result = evaluate(options)
    model = next(m for m in result.methods if m.kind == "model")
    rows = result.per_image
    groups: dict[str, Any] = {}
    for kind in KINDS:
        entry: dict[str, Any] = {}
        for metric, better in (("psnr_hole", max), ("ssim_hole", max), ("lpips", min)):
            ours = per_case(rows, model.name, kind, metric)
            if np.isnan(ours).all():
                continue
            base = {b: per_case(rows, b, kind, metric) for b in BASELINES}
            best = better(BASELINES, key=lambda b: float(np.nanmean(base[b])))
            diff = mean_ci(ours - base[best])
            entry[metric] = {"model": mean_ci(ours), **{b: mean_ci(v) for b, v in base.items()},
                             "best_baseline": best, "difference": diff}
            margin = PSNR_MARGIN[kind] if metric == "psnr_hole" else 0.0
            entry[metric]["target"] = (f"≥ {best} + {margin} dB" if metric == "psnr_hole"
                                       else f"{'>' if better is max else '<'} {best}")
            entry[metric]["met"] = bool(diff["mean"] >= margin if metric == "psnr_hole" else
                                        (diff["mean"] > 0 if better is max else diff["mean"] < 0))
        groups[kind] = entry
    nme = np.concatenate([per_case(rows, model.name, k, "nme") for k in KINDS])
    best = {kind: groups[kind]["psnr_hole"]["best_baseline"] for kind in KINDS}
    doc = {"faces": min(limit, len(images)), "kinds": list(KINDS), "groups": groups,
           "nme": {**mean_ci(nme), "target": f"≤ {NME_LIMIT}",
                   "met": bool(np.nanmean(nme) <= NME_LIMIT)},
           "by_age": by_age(rows, model.name, best),
           "model": {"id": model.model_id, "trained": model.trained, "source": model.source},
           "unavailable": result.unavailable}
    return doc, model.name


def by_age(rows: list[dict[str, Any]], model: str, best: dict[str, str]) -> dict[str, Any]:
    """Per `AGE_BANDS` band: faces, the paired hole-PSNR margin over each kind's best baseline,
    and the model's NME over the four kinds."""
    from inclg.evaluate.report import AGE_BANDS, age_band, age_of

    def scores(method: str, kind: str, metric: str) -> dict[str, float]:
        return {r["image"]: r[metric] for r in rows if r["method"] == method
                and r["mask"] == kind and isinstance(r.get(metric), float)}

    out: dict[str, Any] = {}
    for band, _, _ in AGE_BANDS:
        def in_band(image: str) -> bool:
            age = age_of(image)
            return age is not None and age_band(age) == band  # noqa: B023

        entry: dict[str, Any] = {"psnr_margin": {}}
        nme: list[float] = []
        for kind in KINDS:
            ours, theirs = scores(model, kind, "psnr_hole"), scores(best[kind], kind, "psnr_hole")
            diffs = np.array([ours[i] - theirs[i] for i in ours if i in theirs and in_band(i)])
            if len(diffs):
                entry["psnr_margin"][kind] = mean_ci(diffs)
            nme += [v for i, v in scores(model, kind, "nme").items() if in_band(i)]
        if entry["psnr_margin"]:
            entry["faces"] = entry["psnr_margin"][KINDS[0]]["n"]
            entry["nme"] = mean_ci(np.array(nme)) if nme else None
            out[band] = entry
    return out


def audit(weights: str, members: list[Path], non_members: list[Path], count: int,
          seed: int) -> dict[str, Any]:
    """Membership inference with each face's own lip and cleft-left masks."""
    import random

    from inclg.evaluate import privacy
    from inclg.evaluate.runner import landmarks_path_for
    from inclg.weights import load_model

    model = load_model(weights)
    rng = random.Random(seed)
    sets = []
    for paths in (rng.sample(members, count), non_members[:count]):
        faces, marks = privacy.load_faces(paths, [landmarks_path_for(p) for p in paths])
        masks = privacy.landmark_audit_masks(marks, ["lip", "cleft-left"], faces.shape[-1])
        sets.append(privacy.face_errors(model.generator, faces, masks, marks))
    results = privacy.attacks(sets[0], sets[1], seed=seed)
    attacks = [{"name": r.name, "auc": r.auc, "auc_ci": list(r.auc_ci),
                "tpr_at_1_fpr": r.tpr_at_1_fpr, "verdict": privacy.verdict(r),
                "met": bool(r.auc_ci[0] <= 0.5 <= r.auc_ci[1] or r.auc <= AUDIT_AUC_LIMIT)}
               for r in results]
    return {"members": count, "non_members": count, "masks": ["lip", "cleft-left"],
            "attacks": attacks, "met": all(a["met"] for a in attacks)}


def speed(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    ratio = doc.get("speedup_vs_paper")
    return {"source": str(path), "speedup_vs_paper": ratio, "cpu": doc.get("cpu"),
            "weights": doc.get("weights"),
            "met": bool(ratio is not None and ratio >= SPEEDUP_TARGET)}


def markdown(doc: dict[str, Any]) -> str:
    lines = ["| group | metric | INCLG (95 % CI) | Telea | NS | INCLG − best | target | met |",
             "|---|---|---|---|---|---|---|---|"]
    for kind, entry in doc["quality"]["groups"].items():
        for metric, row in entry.items():
            digits = 2 if metric == "psnr_hole" else 4
            cell = lambda v: f"{v['mean']:.{digits}f}"  # noqa: E731
            lines.append(
                f"| {kind} | {metric} | {cell(row['model'])} ± {row['model']['ci95']:.{digits}f} | "
                f"{cell(row['telea'])} | {cell(row['ns'])} | "
                f"{row['difference']['mean']:+.{digits}f} ± {row['difference']['ci95']:.{digits}f}"
                f" | {row['target']} | {'yes' if row['met'] else '**no**'} |")
    nme = doc["quality"]["nme"]
    lines.append(f"| all four | landmark NME | {nme['mean']:.4f} ± {nme['ci95']:.4f} | – | – | – | "
                 f"{nme['target']} | {'yes' if nme['met'] else '**no**'} |")
    if "audit" in doc:
        for a in doc["audit"]["attacks"]:
            lines.append(f"| audit | {a['name']} AUC | {a['auc']:.3f} [{a['auc_ci'][0]:.3f}, "
                         f"{a['auc_ci'][1]:.3f}] | – | – | – | CI ∋ 0.5 or ≤ 0.55 | "
                         f"{'yes' if a['met'] else '**no**'} |")
    if "speed" in doc:
        s = doc["speed"]
        lines.append(f"| predict 1024² | speed-up vs paper-size | {s['speedup_vs_paper']} × | – | – "
                     f"| – | ≥ {SPEEDUP_TARGET} × | {'yes' if s['met'] else '**no**'} |")
    bands = doc["quality"].get("by_age") or {}
    if bands:
        lines += ["", "By age band (UTKFace faces; hole-PSNR margin over the best baseline, dB; "
                  "not a target):", "",
                  "| age | faces | " + " | ".join(KINDS) + " | NME |",
                  "|---|---|" + "---|" * (len(KINDS) + 1)]
        for band, entry in bands.items():
            margin = entry["psnr_margin"]
            cells = [f"{margin[k]['mean']:+.2f} ± {margin[k]['ci95']:.2f}" if k in margin else "–"
                     for k in KINDS]
            nme_cell = f"{entry['nme']['mean']:.4f}" if entry.get("nme") else "–"
            lines.append(f"| {band} | {entry['faces']} | " + " | ".join(cells) + f" | {nme_cell} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="default")
    parser.add_argument("--lists", type=Path, default=ROOT / "prepared" / "faces" / "lists")
    parser.add_argument("--limit", type=int, default=500, help="test faces")
    parser.add_argument("--audit", type=int, default=0, help="faces per side of the audit (0: skip)")
    parser.add_argument("--speed", type=Path, default=None, help="predict_speed.py's JSON")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                        "compact_targets.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from inclg.data.filelists import read_flist
    from inclg.io.files import atomic_write_text
    from inclg.machine import describe
    from inclg.weights import load_model

    start = time.perf_counter()
    test = read_flist(args.lists / "test_images.flist")
    picked = sorted(random.Random(args.seed).sample(range(len(test)), min(args.limit, len(test))))
    test = [test[i] for i in picked]  # a seeded sample of both sources, in list order
    doc: dict[str, Any] = {"benchmark": "compact_targets", "weights": args.weights,
                           # what `inclg predict` reports: compare it with the shipped model's
                           "checksum": load_model(args.weights).checksum,
                           "test_sample": f"{len(test)} faces drawn with seed {args.seed}",
                           **describe()}
    doc["quality"], _ = quality(args.weights, test, args.limit)
    if args.audit:
        doc["audit"] = audit(args.weights, read_flist(args.lists / "train_images.flist"),
                             test, args.audit, args.seed)
    if args.speed is not None:
        doc["speed"] = speed(args.speed)
    doc["seconds"] = round(time.perf_counter() - start, 1)
    table = markdown(doc)
    atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")
    atomic_write_text(args.out.with_suffix(".md"), table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
