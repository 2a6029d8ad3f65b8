"""`inclg predict` on one photo or a folder: pair masks, skip finished photos, write the outputs.

Per photo NAME.ext the output folder receives NAME.result.png (lossless, so the pixels outside
the mask stay exactly the photo's), NAME.before_after.jpg, NAME.landmarks.jpg and, last,
NAME.json. Every file is written atomically and only after the
whole prediction succeeded, so a failed photo leaves nothing behind and a killed run leaves no
torn file. NAME.json records a `request` key (photo, mask, seed, face, precision, backend and
model checksums): a later run skips every photo whose JSON carries the same key, so re-running a
folder resumes it, and changing any of those inputs redoes the photo.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from inclg.data import DataError
from inclg.data.imageio import IMAGE_SUFFIXES, list_images
from inclg.fileio import atomic_write_bytes, atomic_write_text
from inclg.infer.inputs import PredictError
from inclg.infer.pipeline import AUTO_MASKS, Predictor, seed_for
from inclg.infer.report import before_after, encode_image, landmarks_overlay, result_record

DEFAULT_OUT = "inclg-out"  # next to the photo, or inside the folder
OUTPUTS = {
    "result": ".result.png",
    "before_after": ".before_after.jpg",
    "landmarks": ".landmarks.jpg",
    "json": ".json",
}
MASK_MARK = ".mask"  # PHOTO.mask.png: a mask, never a photo


@dataclass(frozen=True)
class MaskSpec:
    """Where each photo's mask comes from: one file, a folder paired by name, or the landmarks."""

    file: Path | None = None
    folder: Path | None = None
    auto: str | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.file, self.folder, self.auto) if v is not None]
        if len(given) != 1:
            raise PredictError("give exactly one of --mask, --mask-dir or --auto-mask "
                               f"(got {len(given)})")
        if self.auto is not None and self.auto not in AUTO_MASKS:
            raise PredictError(f"unknown automatic mask {self.auto!r}; choose one of "
                               f"{', '.join(AUTO_MASKS)}")
        if self.file is not None and not self.file.is_file():
            raise PredictError(f"mask {self.file}: no such file")
        if self.folder is not None and not self.folder.is_dir():
            raise PredictError(f"mask folder {self.folder}: no such folder")


@dataclass(frozen=True)
class Item:
    """One photo to process and the files it will produce."""

    photo: Path
    key: str  # path below the folder without suffix ("sub/IMG_1"); the stem for one photo
    outputs: dict[str, Path]


@dataclass(frozen=True)
class Outcome:
    """What happened to one photo."""

    item: Item
    status: Literal["ok", "skipped", "failed"]
    reason: str = ""
    seconds: float = 0.0
    record: dict[str, Any] = field(default_factory=dict)


def is_output_name(name: str) -> bool:
    """True for files INCLG writes (NAME.result.png, ...) and for masks named NAME.mask.ext."""
    lower = name.lower()
    if any(lower.endswith(suffix) for suffix in OUTPUTS.values() if suffix != ".json"):
        return True
    return Path(lower).stem.endswith(MASK_MARK)


def _within(path: Path, folder: Path | None) -> bool:
    return folder is not None and path.resolve().is_relative_to(folder.resolve())


def plan(path: Path, out: Path | None = None,
         skip: tuple[Path, ...] = ()) -> tuple[list[Item], Path]:
    """The photos under `path` (a photo or a folder, searched recursively) and the output folder.

    Default output: ``inclg-out`` next to a photo or inside a folder. Inside a folder, the output
    folder, the folders in `skip` (a mask folder), INCLG's own outputs and NAME.mask.* files are
    not photos.
    """
    if path.is_file():
        out = out or path.parent / DEFAULT_OUT
        return [Item(path, path.stem, _outputs(out, path.stem))], out
    if not path.is_dir():
        raise PredictError(f"{path}: no such photo or folder")
    out = out or path / DEFAULT_OUT
    items = []
    for photo in list_images([path]):
        if _within(photo, out) or any(_within(photo, s) for s in skip):
            continue
        if is_output_name(photo.name):
            continue
        key = photo.relative_to(path).with_suffix("").as_posix()
        items.append(Item(photo, key, _outputs(out, key)))
    if not items:
        raise PredictError(f"{path}: no photos in this folder ({', '.join(IMAGE_SUFFIXES)})")
    return items, out


def _outputs(out: Path, key: str) -> dict[str, Path]:
    return {kind: out / f"{key}{suffix}" for kind, suffix in OUTPUTS.items()}


def find_mask(folder: Path, key: str, photo: Path | None = None) -> Path | None:
    """The mask for the photo `key` in `folder`: KEY.mask.ext, else KEY.ext (any image type),
    never the photo itself (masks may sit beside their photos)."""
    base = folder / key
    if not base.parent.is_dir():
        return None
    candidates = [p for p in sorted(base.parent.iterdir())
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and p.stem in (base.name, base.name + MASK_MARK)
                  and not (photo is not None and p.resolve() == photo.resolve())]
    candidates.sort(key=lambda p: p.stem != base.name + MASK_MARK)
    return candidates[0] if candidates else None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class PredictJob:
    """Predict every photo of a `plan`, skipping those already done; `run` yields each outcome."""

    def __init__(self, path: Path, predictor: Predictor, masks: MaskSpec,
                 out: Path | None = None, seed: int = 0, face: int | None = None) -> None:
        self.predictor = predictor
        self.masks = masks
        self.seed = seed
        self.face = face
        skip = (masks.folder,) if masks.folder is not None else ()
        self.items, self.out = plan(path, out, skip)
        inputs = {item.photo.resolve() for item in self.items}
        if masks.file is not None:
            inputs.add(masks.file.resolve())
        self._inputs = inputs

    def run(self) -> Iterator[Outcome]:
        for item in self.items:
            yield self.process(item)

    def process(self, item: Item) -> Outcome:
        """Predict one photo and write its outputs; a bad photo gives a failed outcome."""
        start = time.perf_counter()
        try:
            return self._process(item, start)
        except DataError as err:
            return Outcome(item, "failed", str(err), time.perf_counter() - start)
        except OSError as err:
            return Outcome(item, "failed", f"{item.photo}: cannot write the outputs ({err})",
                           time.perf_counter() - start)
        except Exception as err:  # noqa: BLE001 - a bug must not stop the other photos
            return Outcome(item, "failed", f"{item.photo}: unexpected error, please report it "
                           f"({type(err).__name__}: {err})", time.perf_counter() - start)

    def _process(self, item: Item, start: float) -> Outcome:
        name = str(item.photo)
        mask_path = self.masks.file
        if self.masks.folder is not None:
            mask_path = find_mask(self.masks.folder, item.key, item.photo)
            if mask_path is None:
                raise PredictError(f"{name}: no mask for it in {self.masks.folder} (looked for "
                                   f"{item.key}.png or {item.key}{MASK_MARK}.png, any image type)")
        inputs = self._inputs | ({mask_path.resolve()} if mask_path is not None else set())
        clash = [p for p in item.outputs.values() if p.resolve() in inputs]
        if clash:
            raise PredictError(f"{name}: the output {clash[0]} would overwrite an input; "
                               "choose another --out")
        try:
            data = item.photo.read_bytes()
        except OSError as err:
            raise PredictError(f"{name}: cannot be opened ({err.strerror or err})") from None
        mask_data = None
        if mask_path is not None:
            try:
                mask_data = mask_path.read_bytes()
            except OSError as err:
                raise PredictError(f"{mask_path}: cannot be opened "
                                   f"({err.strerror or err})") from None
        model = self.predictor.model
        request = {
            "photo_sha256": _sha256(data),
            "mask": f"auto:{self.masks.auto}" if mask_data is None else _sha256(mask_data),
            "seed": self.seed,
            "face": self.face,
            "precision": self.predictor.precision,
            "backend": self.predictor.backend,
            "model_checksum": model.checksum,
        }
        key = _sha256(json.dumps(request, sort_keys=True).encode())
        if self._done(item, key):
            return Outcome(item, "skipped", "already done", time.perf_counter() - start)

        seed = seed_for(self.seed, item.photo.name)
        result = self.predictor(data, mask_path, auto_mask=self.masks.auto, face=self.face,
                                seed=seed, name=name)
        tick = time.perf_counter()
        images = {
            "result": encode_image(result.image, ".png"),
            "before_after": encode_image(before_after(result), ".jpg"),
            "landmarks": encode_image(landmarks_overlay(result), ".jpg"),
        }
        timings = {"render": round(time.perf_counter() - tick, 4)}
        outputs = {kind: path.name for kind, path in item.outputs.items() if kind != "json"}
        extra = {
            "photo_sha256": request["photo_sha256"],
            "run_seed": self.seed,
            "precision": self.predictor.precision,
            "backend": self.predictor.backend,
            "request": key,
        }
        if mask_data is not None:
            extra["mask_sha256"] = request["mask"]
        record = result_record(result, outputs, extra)
        written: list[Path] = []
        try:
            tick = time.perf_counter()
            for kind, blob in images.items():
                atomic_write_bytes(item.outputs[kind], blob)
                written.append(item.outputs[kind])
            timings["write"] = round(time.perf_counter() - tick, 4)
            record["timings_s"].update(timings)
            record["timings_s"]["end_to_end"] = round(time.perf_counter() - start, 4)
            atomic_write_text(item.outputs["json"], json.dumps(record, indent=1) + "\n")
        except OSError:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        return Outcome(item, "ok", seconds=time.perf_counter() - start, record=record)

    @staticmethod
    def _done(item: Item, key: str) -> bool:
        """True if the photo's JSON holds this request key and every output is on disk."""
        try:
            record = json.loads(item.outputs["json"].read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return (isinstance(record, dict) and record.get("request") == key
                and all(path.is_file() for path in item.outputs.values()))


def summarise(outcomes: list[Outcome], out: Path) -> dict[str, Any]:
    """Counts, failures with their reasons and timing of a run (written as summary.json)."""
    done = [o for o in outcomes if o.status == "ok"]
    return {
        "out": str(out),
        "photos": len(outcomes),
        "ok": len(done),
        "skipped": sum(o.status == "skipped" for o in outcomes),
        "failed": sum(o.status == "failed" for o in outcomes),
        "failures": [{"photo": str(o.item.photo), "reason": o.reason}
                     for o in outcomes if o.status == "failed"],
        "seconds_per_photo": round(sum(o.seconds for o in done) / len(done), 3) if done else None,
    }
