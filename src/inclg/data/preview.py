"""Contact sheets of prepared data: check alignment, landmarks and masks at a glance."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from inclg.data import DataError
from inclg.data.align import transform_points
from inclg.data.faces import read_jsonl
from inclg.data.landmarks import REGIONS, load_landmarks
from inclg.data.masks import landmark_mask
from inclg.io.images import load_mask, load_rgb, save_image

_COLOURS = {  # RGB per region
    "jaw": (255, 255, 0),
    "right_brow": (255, 128, 0),
    "left_brow": (255, 128, 0),
    "nose_bridge": (0, 255, 255),
    "nostrils": (0, 255, 255),
    "right_eye": (0, 255, 0),
    "left_eye": (255, 0, 255),
    "outer_lips": (255, 64, 64),
    "inner_lips": (255, 160, 160),
}


def draw_face(
    image: np.ndarray,
    landmarks: np.ndarray,
    mask: np.ndarray | None = None,
    source_outline: np.ndarray | None = None,
) -> np.ndarray:
    """A copy of `image` with the mask tinted red, the photo's border (where the crop reaches past
    the photo) in white, and the landmarks as dots coloured per region (the subject's right eye
    green, left eye magenta, so a wrong flip shows)."""
    canvas = image.copy()
    if mask is not None:
        hole = mask > 0.5
        canvas[hole] = (0.5 * canvas[hole] + 0.5 * np.array([255, 0, 0])).astype(np.uint8)
        contours, _ = cv2.findContours(
            hole.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        cv2.drawContours(canvas, contours, -1, (255, 0, 0), 1)
    if source_outline is not None:
        cv2.polylines(
            canvas,
            [np.round(source_outline).astype(np.int32)],
            True,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    for region, indices in REGIONS.items():
        for x, y in landmarks[list(indices)].tolist():
            cv2.circle(canvas, (round(x), round(y)), 2, _COLOURS[region], -1, cv2.LINE_AA)
    return canvas


def _label(cell: np.ndarray, text: str) -> None:
    cv2.rectangle(cell, (0, cell.shape[0] - 14), (cell.shape[1], cell.shape[0]), (0, 0, 0), -1)
    cv2.putText(
        cell,
        text[:28],
        (2, cell.shape[0] - 3),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.35,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )


def contact_sheet(cells: list[np.ndarray], columns: int = 8, gap: int = 2) -> np.ndarray:
    """Tile equally sized RGB cells into one image, row by row."""
    if not cells:
        raise DataError("nothing to show on the contact sheet")
    h, w = cells[0].shape[:2]
    rows = -(-len(cells) // columns)
    sheet = np.full((rows * (h + gap) + gap, columns * (w + gap) + gap, 3), 32, np.uint8)
    for i, cell in enumerate(cells):
        r, c = divmod(i, columns)
        sheet[
            gap + r * (h + gap) : gap + r * (h + gap) + h,
            gap + c * (w + gap) : gap + c * (w + gap) + w,
        ] = cell
    return sheet


def preview_prepared(
    prepared: str | Path,
    out: str | Path,
    count: int = 48,
    columns: int = 8,
    cell: int = 128,
    mask_kind: str | None = "cleft-left",
    masks: list[Path] | None = None,
    seed: int = 0,
    rejects: int = 0,
) -> int:
    """Write a contact sheet of `count` accepted faces (a seeded, evenly mixed sample) and,
    optionally, `rejects` rejected photos labelled with their reason; returns the cells drawn.

    Every face shows its landmarks and a mask: one from `masks` if given, else the landmark mask
    `mask_kind` (None: no mask).
    """
    prepared = Path(prepared)
    manifest = sorted(read_jsonl(prepared / "manifest.jsonl"), key=lambda r: r["key"])
    if not manifest:
        raise DataError(f"{prepared} has no accepted faces (manifest.jsonl is empty or missing)")
    rng = np.random.default_rng(seed)
    picks = sorted(rng.choice(len(manifest), size=min(count, len(manifest)), replace=False))
    cells = []
    for n, i in enumerate(picks):
        record = manifest[i]
        image = load_rgb(prepared / record["image"])
        points = load_landmarks(prepared / record["landmarks"])
        size = image.shape[0]
        if masks:
            mask = load_mask(masks[n % len(masks)], size)
        else:
            mask = landmark_mask(mask_kind, points, size) if mask_kind else None
        w, h = record["source_size"]
        corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
        outline = transform_points(corners, np.array(record["transform"]))
        drawn = cv2.resize(
            draw_face(image, points, mask, outline), (cell, cell), interpolation=cv2.INTER_AREA
        )
        _label(drawn, record["key"])
        cells.append(drawn)
    bad = sorted(read_jsonl(prepared / "rejects.jsonl"), key=lambda r: r["key"])
    for i in (
        sorted(rng.choice(len(bad), size=min(rejects, len(bad)), replace=False)) if bad else []
    ):
        cells.append(_reject_cell(bad[i], cell))
    save_image(out, contact_sheet(cells, columns))
    return len(cells)


def _reject_cell(record: dict, cell: int) -> np.ndarray:
    canvas = np.full((cell, cell, 3), 64, np.uint8)
    try:
        image = load_rgb(record["source"])
    except DataError:
        image = None
    if image is not None:
        scale = cell / max(image.shape[:2])
        small = cv2.resize(
            image,
            (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
            interpolation=cv2.INTER_AREA,
        )
        canvas[: small.shape[0], : small.shape[1]] = small
    cv2.rectangle(canvas, (0, 0), (cell - 1, cell - 1), (255, 0, 0), 2)
    _label(canvas, f"{record['reason']}: {record['key'].rsplit('/', 1)[-1]}")
    return canvas


def small_png(sheet: Image.Image, max_kb: int, dither: bool = True) -> bytes:
    """`sheet` as a PNG of at most `max_kb` KB, colour-quantised as little as that allows: figures
    committed to the docs stay small. Raises `DataError` if even 48 colours do not fit."""
    for colours in (256, 192, 128, 96, 64, 48):
        quantised = sheet.quantize(colours, method=Image.Quantize.MEDIANCUT,
                                   dither=Image.Dither.FLOYDSTEINBERG if dither
                                   else Image.Dither.NONE)
        buffer = io.BytesIO()
        quantised.save(buffer, "PNG", optimize=True)
        if buffer.tell() <= max_kb * 1024:
            return buffer.getvalue()
    raise DataError(f"the figure does not fit in {max_kb} KB; make its cells smaller")

