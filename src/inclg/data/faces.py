"""The batch job behind ``inclg data faces``: photos in, aligned 256 x 256 crops + landmarks out.

Output folder layout::

    settings.json      the options the folder was prepared with (a resumed run must match them)
    manifest.jsonl     a JSON line per accepted photo (source, sha256, detector, transform, quality)
    rejects.jsonl      one JSON line per rejected photo with its reason
    images/<key>.png   aligned crops
    landmarks/<key>.txt  136 numbers "x1 y1 x2 y2 ..." in crop pixels (what the original reads)
    summary.json       counts per outcome; runs.jsonl: time and throughput of every run

A photo's key is the name of the folder given on the command line followed by its path below it,
without suffix (``celeba/182638``). Results are appended to the JSON Lines files as they arrive,
so a killed run resumes by skipping every source already listed; a finished run repeated does
nothing (idempotent).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inclg.data import DataError
from inclg.data.align import BORDERS, align, eye_distance
from inclg.data.landmarks import LandmarkDetector, check_backend, create_detector, save_landmarks
from inclg.io.files import atomic_write_text
from inclg.io.images import ImageError, decode_rgb, list_images, save_image

REJECT_REASONS = {
    "unreadable": "the file cannot be decoded as an image",
    "no_face": "the detector found no face",
    "several_faces": "two or more faces of similar size: which one is meant is ambiguous",
    "face_too_small": "eyes closer than --min-eye-distance pixels: the crop would be a blur",
    "too_much_outside": "more than --max-outside of the aligned crop lies beyond the photo",
    "face_cut_off": "eyes, brows, nose or mouth lie outside the photo",
    "name_collision": "another source file maps to the same output name",
}


@dataclass(frozen=True)
class FaceOptions:
    """Everything that decides the content of a prepared folder (saved as settings.json)."""

    detector: str = "dlib"
    size: int = 256
    border: str = "blur"
    image_format: str = "png"  # png (lossless) | jpg | webp
    max_outside: float = 0.45  # UTKFace's tight crops leave ~36 % of the template area outside
    min_eye_distance: float = 24.0  # source pixels between eye centres (template: 80 at 256)
    several_faces_ratio: float = 0.6  # a second face at least this big (relative) is ambiguous

    def __post_init__(self) -> None:
        if self.border not in BORDERS:
            raise DataError(
                f"unknown border mode {self.border!r}; choose one of {', '.join(BORDERS)}"
            )
        if self.image_format not in ("png", "jpg", "webp"):
            raise DataError(f"image format must be png, jpg or webp, not {self.image_format!r}")
        if self.size < 32 or not 0 <= self.max_outside <= 1:
            raise DataError(
                "the crop size must be at least 32 and max_outside a fraction in [0, 1]"
            )


@dataclass(frozen=True)
class Source:
    key: str
    path: Path


def plan_sources(paths: Sequence[str | Path]) -> tuple[list[Source], list[Source]]:
    """Keys for every photo under `paths`: (usable, name collisions), both sorted by key."""
    roots = [Path(p) for p in paths]
    names = [r.stem if r.is_file() else r.resolve().name for r in roots]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(
            f"two sources are both called {dupes[0]!r}; their outputs would mix: "
            "give the folders distinct names"
        )
    sources: dict[str, Source] = {}
    collisions: list[Source] = []
    for root, name in zip(roots, names):
        for path in list_images([root]):
            rel = path.relative_to(root).with_suffix("").as_posix() if root.is_dir() else ""
            key = f"{name}/{rel}" if rel else name
            src = Source(key, path.resolve())
            if key in sources:
                collisions.append(src)
            else:
                sources[key] = src
    return sorted(sources.values(), key=lambda s: s.key), collisions


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON Lines file; a torn last line (a killed run) is cut off the file."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as fh:
            fh.truncate(cut)
        data = data[:cut]
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


# One detector per worker process, built once by the pool initialiser.
_worker: dict[str, Any] = {}


def _init_worker(options: FaceOptions, out: str) -> None:
    _worker["detector"] = create_detector(options.detector)
    _worker["options"] = options
    _worker["out"] = Path(out)


def _process(source: Source) -> dict[str, Any]:
    return prepare_one(source, _worker["detector"], _worker["options"], _worker["out"])


def prepare_one(
    source: Source, detector: LandmarkDetector, options: FaceOptions, out: Path
) -> dict[str, Any]:
    """Detect, align and write one photo; returns its manifest or rejects record (never raises
    for a bad photo: the reason is in the record)."""
    record: dict[str, Any] = {"source": str(source.path), "key": source.key}
    try:
        data = source.path.read_bytes()
    except OSError as err:
        return record | {"sha256": None, "reason": "unreadable", "detail": str(err.strerror or err)}
    record["sha256"] = hashlib.sha256(data).hexdigest()
    try:
        image = decode_rgb(data, str(source.path))
    except ImageError as err:
        return record | {"reason": "unreadable", "detail": str(err).split(": ", 1)[-1]}
    record["source_size"] = [int(image.shape[1]), int(image.shape[0])]
    faces = detector.detect(image)
    if not faces:
        return record | {"reason": "no_face", "detail": detector.name}
    face = faces[0]
    rivals = [f for f in faces[1:] if f.size >= options.several_faces_ratio * face.size]
    if rivals:
        return record | {
            "reason": "several_faces",
            "detail": f"{1 + len(rivals)} faces of similar size",
        }
    eyes = eye_distance(face.landmarks)
    if eyes < options.min_eye_distance:
        return record | {"reason": "face_too_small", "detail": f"eye distance {eyes:.1f} px"}
    h, w = image.shape[:2]
    inner = face.landmarks[17:]
    if (inner < -0.5).any() or (inner[:, 0] > w - 0.5).any() or (inner[:, 1] > h - 0.5).any():
        return record | {"reason": "face_cut_off", "detail": "inner landmarks outside the photo"}
    crop, points, alignment = align(image, face.landmarks, options.size, options.border)
    if alignment.outside > options.max_outside:
        return record | {
            "reason": "too_much_outside",
            "detail": f"{alignment.outside:.1%} of the crop",
        }
    image_rel = f"images/{source.key}.{options.image_format}"
    landmark_rel = f"landmarks/{source.key}.txt"
    save_image(out / image_rel, crop)
    save_landmarks(out / landmark_rel, points)
    return record | {
        "image": image_rel,
        "landmarks": landmark_rel,
        "detector": f"{detector.name} ({face.method})",
        "transform": np.round(alignment.matrix, 6).tolist(),
        "quality": {
            "score": round(face.score, 4),
            "eye_distance": round(eyes, 2),
            "scale": round(alignment.scale, 4),
            "outside": round(alignment.outside, 4),
            "residual": round(alignment.residual, 4),
            "other_faces": len(faces) - 1,
        },
    }


@dataclass
class FaceJob:
    """A resumable preparation of the photos under `sources` into `out`.

    Construction scans the sources and the existing output; `run()` processes what is left and
    yields each record as it is written, so a caller can show progress.
    """

    sources: Sequence[str | Path]
    out: Path
    options: FaceOptions = dataclasses.field(default_factory=FaceOptions)
    limit: int | None = None  # only the first N sources in key order (a reproducible subset)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        check_backend(self.options.detector)  # fail once, clearly, not in every worker
        self._check_settings()
        planned, collisions = plan_sources(self.sources)
        if self.limit is not None:
            planned = planned[: self.limit]
        done = {
            r["source"]
            for name in ("manifest.jsonl", "rejects.jsonl")
            for r in read_jsonl(self.out / name)
        }
        self.already_done = sum(1 for s in planned + collisions if str(s.path) in done)
        self.todo = [s for s in planned if str(s.path) not in done]
        self._collisions = [s for s in collisions if str(s.path) not in done]

    @property
    def pending(self) -> int:
        """Photos the next `run()` will handle."""
        return len(self.todo) + len(self._collisions)

    def _check_settings(self) -> None:
        wanted = dataclasses.asdict(self.options)
        path = self.out / "settings.json"
        if path.exists():
            found = json.loads(path.read_text(encoding="utf-8"))
            if found != wanted:
                diff = ", ".join(
                    f"{k}: {found.get(k)!r} -> {v!r}"
                    for k, v in wanted.items()
                    if found.get(k) != v
                )
                raise DataError(
                    f"{self.out} was prepared with other settings ({diff}); "
                    "use the same options to resume, or a new --out folder"
                )
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(wanted, indent=2) + "\n")

    def run(self, workers: int | None = None, chunksize: int = 16) -> Iterator[dict[str, Any]]:
        """Process the remaining photos with `workers` processes (default: all cores; 0: in this
        process) and yield every record once it is on disk."""
        workers = (os.cpu_count() or 1) if workers is None else workers
        start = time.monotonic()
        counts: Counter[str] = Counter()
        with (
            open(self.out / "manifest.jsonl", "a", encoding="utf-8") as accepted,
            open(self.out / "rejects.jsonl", "a", encoding="utf-8") as rejected,
        ):
            for record in self._records(workers, chunksize):
                target = rejected if "reason" in record else accepted
                target.write(json.dumps(record, sort_keys=True) + "\n")
                target.flush()
                counts[record.get("reason", "accepted")] += 1
                yield record
        self._finish(counts, time.monotonic() - start, workers)

    def _records(self, workers: int, chunksize: int) -> Iterator[dict[str, Any]]:
        for src in self._collisions:
            yield {
                "source": str(src.path),
                "key": src.key,
                "sha256": None,
                "reason": "name_collision",
                "detail": "another file has the same name with a different suffix",
            }
        if not self.todo:
            return
        if workers == 0:
            _init_worker(self.options, str(self.out))
            yield from map(_process, self.todo)
            return
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, _init_worker, (self.options, str(self.out))) as pool:
            yield from pool.imap_unordered(_process, self.todo, chunksize=chunksize)

    def _finish(self, counts: Counter[str], seconds: float, workers: int) -> None:
        run = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "processed": sum(counts.values()),
            "outcomes": dict(sorted(counts.items())),
            "seconds": round(seconds, 1),
            "workers": workers,
        }
        with open(self.out / "runs.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(run) + "\n")
        atomic_write_text(
            self.out / "summary.json", json.dumps(summarize(self.out), indent=2) + "\n"
        )


def summarize(out: Path) -> dict[str, Any]:
    """Counts of a prepared folder: accepted, rejected per reason, and the files lists."""
    manifest = read_jsonl(out / "manifest.jsonl")
    rejects = Counter(r["reason"] for r in read_jsonl(out / "rejects.jsonl"))
    by_root = Counter(r["key"].split("/", 1)[0] for r in manifest)
    return {
        "accepted": len(manifest),
        "accepted_by_source": dict(sorted(by_root.items())),
        "rejected": sum(rejects.values()),
        "rejected_by_reason": dict(sorted(rejects.items())),
    }
