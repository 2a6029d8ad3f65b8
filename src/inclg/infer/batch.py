"""`inclg predict` on one photo or a folder: pair masks, skip finished photos, write the outputs.

Per photo NAME.ext and mask kind KIND (a `MaskKind` such as ``cleft-left``, or ``mask`` for a
mask the user drew) the output folder receives NAME.KIND.result.png (lossless, so the pixels
outside the mask stay exactly the photo's; provenance in its text chunks),
NAME.KIND.before_after.jpg, NAME.KIND.landmarks.jpg, NAME.KIND.measurements.png (the face as it
is against the predicted face, `inclg.measurements`) and, last, NAME.KIND.json, so runs with
different masks sit side by side. Every file is written atomically and only after the whole
prediction succeeded, so a failed photo leaves nothing behind and a killed run leaves no torn
file. NAME.KIND.json records a `request` key (photo, mask, seed, face, precision, backend, scale
and model checksums): a later run skips every photo whose JSON carries the same key, so
re-running a folder resumes it. A JSON with another key is another run's result: it is replaced
only with `overwrite` (``--overwrite``), never silently.

A folder run ends with `PredictJob.write_summary`: inclg-predict-summary.KIND.json (counts,
failures, the history of runs) and inclg-predict.KIND.csv (one row per photo: status, model, fit
and every measurement of both faces and their difference).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from inclg.data.kinds import MaskKind
from inclg.errors import DataError, PredictError
from inclg.infer.pipeline import USER_MASK, Predictor, parse_kind, seed_for
from inclg.infer.report import (
    before_after,
    landmarks_overlay,
    measurements_image,
    result_png,
    result_record,
)
from inclg.io.files import atomic_write_bytes, atomic_write_text
from inclg.io.images import IMAGE_SUFFIXES, encode_image, list_images
from inclg.measurements import MEASUREMENT_NAMES, Comparison

DEFAULT_OUT = "inclg-out"  # next to the photo, or inside the folder
SUMMARY = "inclg-predict-summary.{tag}.json"  # per mask kind, in the output folder
TABLE = "inclg-predict.{tag}.csv"  # one row per photo, per mask kind
MAX_HISTORY = 100  # runs remembered in a summary
OUTPUTS = {
    "result": ".result.png",
    "before_after": ".before_after.jpg",
    "landmarks": ".landmarks.jpg",
    "measurements": ".measurements.png",
    "json": ".json",
}
MASK_MARK = ".mask"  # PHOTO.mask.png: a mask, never a photo


@dataclass(frozen=True)
class MaskSpec:
    """Where each photo's mask comes from: one file, a folder paired by name, or the landmarks."""

    file: Path | None = None
    folder: Path | None = None
    auto: MaskKind | str | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.file, self.folder, self.auto) if v is not None]
        if len(given) != 1:
            raise PredictError("give exactly one of --mask, --mask-dir or --auto-mask "
                               f"(got {len(given)})")
        if self.auto is not None:
            object.__setattr__(self, "auto", parse_kind(self.auto))
        if self.file is not None and not self.file.is_file():
            raise PredictError(f"mask {self.file}: no such file")
        if self.folder is not None and not self.folder.is_dir():
            raise PredictError(f"mask folder {self.folder}: no such folder")

    @property
    def tag(self) -> str:
        """The mask kind in output names: NAME.<tag>.result.png."""
        return USER_MASK if self.auto is None else str(self.auto)


@dataclass(frozen=True)
class Scale:
    """What turns the measurements into millimetres: the subject's outer eye-corner distance
    (`eye_distance_mm`, measured on the patient) or the photo's `mm_per_px` (a ruler in the
    face's plane), at most one; neither gives eye-distance units only."""

    eye_distance_mm: float | None = None
    mm_per_px: float | None = None

    def __post_init__(self) -> None:
        if self.eye_distance_mm is not None and self.mm_per_px is not None:
            raise PredictError("give either --eye-distance-mm or --mm-per-px, not both")
        for name, value in self.given().items():
            if not (math.isfinite(value) and value > 0):
                raise PredictError(f"--{name.replace('_', '-')} must be a positive number, "
                                   f"not {value}")

    def given(self) -> dict[str, float]:
        """The scale that was given, by name (empty without one)."""
        return {name: value for name, value in (("eye_distance_mm", self.eye_distance_mm),
                                                ("mm_per_px", self.mm_per_px))
                if value is not None}


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
    notices: tuple[str, ...] = ()  # "note: ..." / "warning: ..." lines for the user (stderr)


def is_output_name(name: str) -> bool:
    """True for files INCLG writes (NAME.result.png, ...) and for masks named NAME.mask.ext."""
    lower = name.lower()
    if any(lower.endswith(suffix) for suffix in OUTPUTS.values() if suffix != ".json"):
        return True
    return Path(lower).stem.endswith(MASK_MARK)


def _within(path: Path, folder: Path | None) -> bool:
    return folder is not None and path.resolve().is_relative_to(folder.resolve())


def plan(path: Path, out: Path | None = None, skip: tuple[Path, ...] = (),
         tag: str = USER_MASK) -> tuple[list[Item], Path]:
    """The photos under `path` (a photo or a folder, searched recursively) and the output folder;
    each photo's outputs are named KEY.`tag`.result.png etc.

    Default output: ``inclg-out`` next to a photo or inside a folder. Inside a folder, the output
    folder, the folders in `skip` (a mask folder), INCLG's own outputs and NAME.mask.* files are
    not photos.
    """
    if path.is_file():
        out = out or path.parent / DEFAULT_OUT
        return [Item(path, path.stem, _outputs(out, path.stem, tag))], out
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
        items.append(Item(photo, key, _outputs(out, key, tag)))
    if not items:
        raise PredictError(f"{path}: no photos in this folder ({', '.join(IMAGE_SUFFIXES)})")
    return items, out


def _outputs(out: Path, key: str, tag: str) -> dict[str, Path]:
    return {kind: out / f"{key}.{tag}{suffix}" for kind, suffix in OUTPUTS.items()}


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


# What a request's inputs are called when a run refuses to replace another run's result.
_REQUEST_NAMES = {"photo_sha256": "photo content", "mask": "mask", "seed": "seed", "face": "face",
                  "precision": "precision", "backend": "backend", "model_checksum": "model",
                  "eye_distance_mm": "eye distance", "mm_per_px": "mm per pixel"}
_SHORT = ("seed", "face", "precision", "backend", "eye_distance_mm", "mm_per_px")


@dataclass(frozen=True)
class _Request:
    """One photo's inputs, read once: the photo and mask bytes and the request key."""

    data: bytes
    mask_path: Path | None
    inputs: dict[str, Any]
    key: str


class PredictJob:
    """Predict every photo of a `plan`, skipping those already done; `run` yields each outcome.

    Another run's result for the same photo and mask kind (a JSON with another request key) is
    refused unless `overwrite`; `conflicts` lists those up front.
    """

    def __init__(self, path: Path, predictor: Predictor, masks: MaskSpec,
                 out: Path | None = None, seed: int = 0, face: int | None = None,
                 overwrite: bool = False, scale: Scale | None = None) -> None:
        self.predictor = predictor
        self.masks = masks
        self.seed = seed
        self.face = face
        self.overwrite = overwrite
        self.scale = scale or Scale()
        skip = (masks.folder,) if masks.folder is not None else ()
        self.items, self.out = plan(path, out, skip, masks.tag)
        inputs = {item.photo.resolve() for item in self.items}
        if masks.file is not None:
            inputs.add(masks.file.resolve())
        self._inputs = inputs

    @property
    def summary_path(self) -> Path:
        return self.out / SUMMARY.format(tag=self.masks.tag)

    @property
    def table_path(self) -> Path:
        return self.out / TABLE.format(tag=self.masks.tag)

    @property
    def batch(self) -> bool:
        """More than one photo: the run ends with a summary and a table (`write_summary`)."""
        return len(self.items) > 1

    def run(self) -> Iterator[Outcome]:
        """Process every photo in order; stopping the iteration (Ctrl-C) stops the run."""
        for item in self.items:
            yield self.process(item)

    def summary(self, outcomes: list[Outcome], interrupted: bool = False) -> dict[str, Any]:
        """The run's summary (`summarise`), carrying the earlier runs' history."""
        pending = len(self.items) - len(outcomes)
        return summarise(outcomes, self.out, read_summary(self.summary_path), pending,
                         interrupted)

    def write_summary(self, summary: dict[str, Any], outcomes: list[Outcome]) -> None:
        """For a batch, write `summary` to `summary_path` and the per-photo table to
        `table_path` (OSError when they cannot be written; the photos' outputs are written)."""
        if self.batch:
            atomic_write_text(self.summary_path, json.dumps(summary, indent=1) + "\n")
            atomic_write_text(self.table_path, self.table(outcomes))

    def table(self, outcomes: list[Outcome]) -> str:
        """CSV, one row per photo of the plan: its status (ok, failed, pending), the model, the
        fit, and the measurements of both faces and their differences (`Comparison.to_row`'s
        columns) as its JSON records them; a photo done by an earlier run is read from there."""
        done = {outcome.item.photo: outcome for outcome in outcomes}
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, [*_TABLE_COLUMNS, *Comparison.field_names()],
                                lineterminator="\n")
        writer.writeheader()
        for item in self.items:
            outcome = done.get(item.photo)
            row: dict[str, Any] = {"photo": str(item.photo), "status": "pending"}
            record = None
            if outcome is not None and outcome.status == "failed":
                row.update(status="failed", reason=outcome.reason)
            elif outcome is not None:
                record = outcome.record or _read_record(item)
            if record is not None:
                row.update(status="ok", mask_kind=record.get("mask", {}).get("kind"),
                           model_id=record.get("model", {}).get("id"),
                           trained=record.get("trained"), seed=record.get("seed"),
                           fit_plausible=(record.get("fit") or {}).get("plausible"))
                row.update(measurement_row(record.get("measurements")))
            writer.writerow(row)
        return buffer.getvalue()

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

    def conflicts(self) -> list[tuple[Item, str]]:
        """Photos whose outputs hold another run's result, each with what differs ("seed 0 ->
        1"); empty with `overwrite`. Photos that cannot be read are left to `process`."""
        if self.overwrite:
            return []
        found = []
        for item in self.items:
            record = _read_record(item)
            if record is None:
                continue
            try:
                request = self._request(item)
            except DataError:
                continue
            if record.get("request") != request.key:
                found.append((item, _difference(record, request.inputs)))
        return found

    def _request(self, item: Item) -> _Request:
        name = str(item.photo)
        mask_path = self.masks.file
        if self.masks.folder is not None:
            mask_path = find_mask(self.masks.folder, item.key, item.photo)
            if mask_path is None:
                raise PredictError(f"{name}: no mask for it in {self.masks.folder} (looked for "
                                   f"{item.key}.png or {item.key}{MASK_MARK}.png, any image type)")
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
        inputs = {
            "photo_sha256": _sha256(data),
            "mask": f"auto:{self.masks.auto}" if mask_data is None else _sha256(mask_data),
            "seed": self.seed,
            "face": self.face,
            "precision": self.predictor.precision,
            "backend": self.predictor.backend,
            "model_checksum": self.predictor.model.checksum,
            **self.scale.given(),  # only when given: earlier runs' keys stay valid
        }
        return _Request(data, mask_path, inputs,
                        _sha256(json.dumps(inputs, sort_keys=True).encode()))

    def _process(self, item: Item, start: float) -> Outcome:
        name = str(item.photo)
        request = self._request(item)
        mask_path = request.mask_path
        inputs = self._inputs | ({mask_path.resolve()} if mask_path is not None else set())
        clash = [p for p in item.outputs.values() if p.resolve() in inputs]
        if clash:
            raise PredictError(f"{name}: the output {clash[0]} would overwrite an input; "
                               "choose another --out")
        record_before = _read_record(item)
        if record_before is not None and record_before.get("request") == request.key and all(
                path.is_file() for path in item.outputs.values()):
            return Outcome(item, "skipped", "already done", time.perf_counter() - start)
        if (record_before is not None and record_before.get("request") != request.key
                and not self.overwrite):
            raise PredictError(
                f"{name}: {item.outputs['json']} holds another run's result "
                f"({_difference(record_before, request.inputs)}); pass --overwrite to replace "
                "it, or choose another --out")

        seed = seed_for(self.seed, item.photo.name)
        result = self.predictor(request.data, mask_path, auto_mask=self.masks.auto,
                                face=self.face, seed=seed, name=name)
        tick = time.perf_counter()
        measurements = result.measurements(**self.scale.given())
        timings = {"measure": round(time.perf_counter() - tick, 4)}
        tick = time.perf_counter()
        images = {
            "result": result_png(result),
            "before_after": encode_image(before_after(result), ".jpg", quality=92),
            "landmarks": encode_image(landmarks_overlay(result), ".jpg", quality=92),
            "measurements": encode_image(measurements_image(result, measurements), ".png"),
        }
        timings["render"] = round(time.perf_counter() - tick, 4)
        outputs = {kind: path.name for kind, path in item.outputs.items() if kind != "json"}
        extra = {
            "photo_sha256": request.inputs["photo_sha256"],
            "run_seed": self.seed,
            "precision": self.predictor.precision,
            "backend": self.predictor.backend,
            "request": request.key,
            "request_inputs": request.inputs,
        }
        if mask_path is not None:
            extra["mask_sha256"] = request.inputs["mask"]
        record = result_record(result, outputs, extra, measurements)
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
        except BaseException:  # OSError, or Ctrl-C: leave no outputs without their JSON
            for path in written:
                path.unlink(missing_ok=True)
            raise
        notices = []
        if result.photo.notes:
            notices.append(f"note: {name}: {'; '.join(result.photo.notes)}")
        if not record["fit"]["plausible"]:
            notices.append(f"warning: {name}: {record['fit']['advice']}")
        for warning in measurements.input.warnings:
            notices.append(f"warning: {name}: measurements: {warning}")
        return Outcome(item, "ok", seconds=time.perf_counter() - start, record=record,
                       notices=tuple(notices))


_TABLE_COLUMNS = ("photo", "status", "reason", "mask_kind", "model_id", "trained", "seed",
                  "fit_plausible")


def measurement_row(doc: dict[str, Any] | None) -> dict[str, Any]:
    """`Comparison.to_row()` rebuilt from its `to_dict()` (a JSON record's "measurements"), so a
    photo predicted by an earlier run fills its table row; empty for a record without them."""
    if not isinstance(doc, dict):
        return {}
    row: dict[str, Any] = {}
    for side in ("input", "predicted"):
        part = doc[side]
        for name in MEASUREMENT_NAMES:
            row[f"{side}_{name}_iod"] = part["values"][name]["iod"]
            row[f"{side}_{name}_mm"] = part["values"][name]["mm"]
        row[f"{side}_yaw_deg"] = part["pose"]["yaw_deg"]
        row[f"{side}_roll_deg"] = part["pose"]["roll_deg"]
        row[f"{side}_not_observed"] = "; ".join(
            name for name in MEASUREMENT_NAMES if part["values"][name]["observed"] is False)
        row[f"{side}_warnings"] = "; ".join(part["warnings"])
    for name in MEASUREMENT_NAMES:
        row[f"difference_{name}_iod"] = doc["difference"][name]["iod"]
        row[f"difference_{name}_mm"] = doc["difference"][name]["mm"]
    return row


def _read_record(item: Item) -> dict[str, Any] | None:
    """The photo's JSON if it is there and readable (a finished run's result), else None."""
    try:
        record = json.loads(item.outputs["json"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _difference(record: dict[str, Any], inputs: dict[str, Any]) -> str:
    """What differs between the run that wrote `record` and `inputs`: "seed 0 -> 1, model"."""
    before = record.get("request_inputs")
    if not isinstance(before, dict):
        return "written by another run or version of INCLG"
    changed = []
    for key, label in _REQUEST_NAMES.items():
        if before.get(key) != inputs.get(key):
            short = key in _SHORT
            changed.append(f"{label} {before.get(key)} -> {inputs.get(key)}" if short else label)
    return "different " + ", ".join(changed) if changed else "another request"


def summarise(outcomes: list[Outcome], out: Path, previous: dict[str, Any] | None = None,
              pending: int = 0, interrupted: bool = False) -> dict[str, Any]:
    """Counts, failures with their reasons and timing of a run (written as the summary JSON).

    Totals are the state of the folder after every run so far: `ok` counts the photos with a
    result, made by this run or an earlier one (`done_this_run` + `skipped`); `failed` and
    `failures` are this run's; `pending` photos were not reached (an interrupted run). `runs`
    keeps each run's own counts, carried over from `previous` (the summary an earlier run wrote).
    """
    done = [o for o in outcomes if o.status == "ok"]
    skipped = sum(o.status == "skipped" for o in outcomes)
    failed = [o for o in outcomes if o.status == "failed"]
    this_run = {
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "done": len(done),
        "skipped": skipped,
        "failed": len(failed),
        "pending": pending,
        "interrupted": interrupted,
        "seconds_per_photo": round(sum(o.seconds for o in done) / len(done), 3) if done else None,
    }
    history = []
    if previous and isinstance(previous.get("runs"), list):
        history = [r for r in previous["runs"] if isinstance(r, dict)]
    history = [*history, this_run][-MAX_HISTORY:]
    return {
        "out": str(out),
        "photos": len(outcomes) + pending,
        "ok": len(done) + skipped,
        "done_this_run": len(done),
        "skipped": skipped,
        "failed": len(failed),
        "pending": pending,
        "interrupted": interrupted,
        "failures": [{"photo": str(o.item.photo), "reason": o.reason} for o in failed],
        "seconds_per_photo": this_run["seconds_per_photo"],
        "done_all_runs": sum(r.get("done", 0) for r in history
                             if isinstance(r.get("done", 0), int)),
        "runs": history,
    }


def read_summary(path: Path) -> dict[str, Any] | None:
    """An earlier run's summary, or None if there is none (or it cannot be read)."""
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return previous if isinstance(previous, dict) else None
