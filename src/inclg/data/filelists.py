"""File lists in the original's ``.flist`` format (one path per line) and the train/val/test split.

The split is disjoint and deterministic: every source folder (``celeba``, ``utkface``, ...) is split
on its own with the same fractions, so each split keeps the mix of ages and datasets, and photos
with identical bytes (same sha256) always land in the same split.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from inclg.data import DataError
from inclg.data.faces import read_jsonl
from inclg.io.files import atomic_write_text

SPLITS = ("train", "val", "test")


def write_flist(path: str | Path, items: Iterable[str | Path]) -> None:
    """One path per line, atomically."""
    atomic_write_text(Path(path), "".join(f"{item}\n" for item in items))


def read_flist(path: str | Path) -> list[Path]:
    """Paths of a list file; relative entries are taken relative to the list's folder."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DataError(f"file list {path} cannot be read ({err.strerror or err})") from None
    entries = [Path(line.strip()) for line in lines if line.strip()]
    return [e if e.is_absolute() else path.parent / e for e in entries]


def split_keys(
    groups: dict[str, Sequence[str]], val: float, test: float, seed: int = 0
) -> dict[str, list[str]]:
    """Split the keys of every group by the order of a seeded hash of the group's id.

    `groups` maps a group id (e.g. a sha256) to the keys that must stay together. The hash order
    does not depend on the order of the input, so the result is fully deterministic.
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise DataError(f"val ({val}) and test ({test}) must be fractions that sum to less than 1")
    order = sorted(groups, key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
    n_val, n_test = round(val * len(order)), round(test * len(order))
    cuts = {
        "test": order[:n_test],
        "val": order[n_test : n_test + n_val],
        "train": order[n_test + n_val :],
    }
    return {split: sorted(k for g in cuts[split] for k in groups[g]) for split in SPLITS}


def split_prepared(
    prepared: str | Path, out: str | Path, val: float = 0.05, test: float = 0.05, seed: int = 0
) -> dict[str, dict[str, int]]:
    """Write ``{train,val,test}_{images,landmarks}.flist`` (absolute paths) for a folder made by
    ``inclg data faces``; returns the count per split and source folder."""
    prepared, out = Path(prepared).resolve(), Path(out)
    manifest = read_jsonl(prepared / "manifest.jsonl")
    if not manifest:
        raise DataError(
            f"{prepared} has no manifest.jsonl with accepted faces; run `inclg data faces` first"
        )
    by_key = {r["key"]: r for r in manifest}
    same_bytes: dict[str, list[str]] = defaultdict(list)
    for key, record in sorted(by_key.items()):
        same_bytes[record["sha256"]].append(key)
    per_root: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for sha, keys in same_bytes.items():
        per_root[keys[0].split("/", 1)[0]][sha] = keys
    counts: dict[str, dict[str, int]] = {split: {} for split in SPLITS}
    chosen: dict[str, list[str]] = {split: [] for split in SPLITS}
    for root, groups in sorted(per_root.items()):
        for split, keys in split_keys(groups, val, test, seed).items():
            chosen[split].extend(keys)
            counts[split][root] = len(keys)
    for split in SPLITS:
        keys = sorted(chosen[split])
        write_flist(out / f"{split}_images.flist", (prepared / by_key[k]["image"] for k in keys))
        write_flist(
            out / f"{split}_landmarks.flist", (prepared / by_key[k]["landmarks"] for k in keys)
        )
    atomic_write_text(
        out / "split.json",
        json.dumps(
            {"prepared": str(prepared), "val": val, "test": test, "seed": seed, "counts": counts},
            indent=2,
        )
        + "\n",
    )
    return counts
