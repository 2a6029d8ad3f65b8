#!/usr/bin/env python3
"""Pack prepared INCLG training data into small, self-contained tar chunks for a GPU machine.

    # here (CPU): from the lists written by `inclg data split` / `inclg data masks`
    python3 scripts/pack_training_data.py pack --faces-lists /work/prepared/faces/lists \
        --masks-lists /work/prepared/masks --out .carry/data --max-train 12000 --max-val 512
    # there (GPU): one or more chunks, in any order, then the lists are rebuilt from what arrived
    python3 scripts/pack_training_data.py unpack .carry/data/chunk_000.tar --manifest \
        .carry/data/manifest.json --dest /tmp/data

Layout inside every chunk (paths relative to the unpack folder, DEST):

    images/<src>/<name>.jpg       aligned 256x256 crop, re-encoded (JPEG q95 by default)
    landmarks/<src>/<name>.txt    68 landmarks, copied byte for byte
    masks/<name>.png              hole masks (chunk_000 only), copied byte for byte
    parts/<list>.chunk_NNN.flist  the part of each list this chunk carries (paths relative to
                                  DEST/lists/, i.e. ``../images/...``)

`unpack` extracts, checks each chunk's sha256 against manifest.json, and concatenates the parts
of every chunk present into ``DEST/lists/{train,val}_{images,landmarks}.flist`` and
``DEST/lists/{train,val}_masks*.flist``, plus ``val_masks_mixed.flist`` (the val ratio groups
interleaved, for validation on a prefix of the list). So any prefix of the chunks is a usable training set.

What goes where, deterministically (`--seed`):
- chunk_000 first holds all masks of the mask lists and the validation faces (``--max-val``
  of the val split, a seeded subset; 0 = all); the train split fills the remainder.
- train faces are a seeded random subset (``--max-train``) of the train split, in seeded random
  order, so the first k chunks are a random sample of it.
- no val or test face ever enters a train list (checked: the script refuses overlapping lists).
The manifest records the counts, the seed, the options and every chunk's sha256 and contents;
``OUT/sources/{train,val}_{images,landmarks}.chunk_NNN.flist`` name the original crops of each
chunk (the members for `inclg audit privacy` are the train faces of the chunks shipped).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import sys
import tarfile
from pathlib import Path

TAR_BLOCK = 512
LISTS = ("train_images", "train_landmarks", "val_images", "val_landmarks")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_list(path: Path) -> list[Path]:
    """Entries of an .flist; relative entries are relative to the list's folder (as inclg)."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [Path(x) if Path(x).is_absolute() else path.parent / x for x in lines if x]


def tar_size(nbytes: int) -> int:
    """Bytes one member takes in a tar: header + data padded to the block size."""
    return TAR_BLOCK + -(-nbytes // TAR_BLOCK) * TAR_BLOCK


def face_key(image: Path) -> str:
    """``<src>/<name>`` of a prepared crop ``.../images/<src>/<name>.<ext>``."""
    return f"{image.parent.name}/{image.stem}"


def encode_image(path: Path, fmt: str, quality: int) -> tuple[bytes, str]:
    if fmt == "copy":
        return path.read_bytes(), path.suffix
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        buf = io.BytesIO()
        if fmt == "jpg":
            img.save(buf, "JPEG", quality=quality, subsampling=0 if quality >= 95 else 2,
                     optimize=True)
            return buf.getvalue(), ".jpg"
        img.save(buf, "PNG", optimize=True)
        return buf.getvalue(), ".png"


class ChunkWriter:
    """Writes members into chunk_NNN.tar files, starting a new one before `limit` is passed."""

    def __init__(self, out: Path, limit: int) -> None:
        self.out, self.limit = out, limit
        self.index, self.tar, self.used = -1, None, 0
        self.parts: dict[str, list[str]] = {}
        self.chunks: list[dict] = []
        self._open()

    def _open(self) -> None:
        self._close()
        self.index += 1
        path = self.out / f"chunk_{self.index:03d}.tar"
        self.tar = tarfile.open(path, "w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
        self.used = 2 * TAR_BLOCK * 10  # end-of-archive blocks, rounded to the 10 KiB record
        self.parts = {}
        self.chunks.append({"file": path.name, "faces": {}, "masks": {}})

    def _add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self.tar.addfile(info, io.BytesIO(data))
        self.used += tar_size(len(data))

    def parts_size(self, extra: dict[str, str] | None = None) -> int:
        """Bytes the list parts will take when the chunk closes (with `extra` entries)."""
        total = 0
        for name in set(self.parts) | set(extra or {}):
            nbytes = sum(len(e.encode()) + 1 for e in self.parts.get(name, ()))
            if extra and name in extra:
                nbytes += len(extra[name].encode()) + 1
            total += tar_size(nbytes)
        return total

    def fits(self, sizes: list[int], lists: dict[str, str]) -> bool:
        need = sum(tar_size(s) for s in sizes) + self.parts_size(lists)
        return self.used + need <= self.limit

    def add_group(self, members: list[tuple[str, bytes]], lists: dict[str, str],
                  kind: str, split: str) -> None:
        """Members that must travel together (a face and its landmarks, or one mask)."""
        sizes = [len(data) for _, data in members]
        if not self.fits(sizes, lists):
            if self.used <= 2 * TAR_BLOCK * 10:
                raise SystemExit(f"error: {members[0][0]} alone exceeds the chunk limit")
            self._open()
        for name, data in members:
            self._add(name, data)
        for list_name, entry in lists.items():
            self.parts.setdefault(list_name, []).append(entry)
        counts = self.chunks[-1][kind]
        counts[split] = counts.get(split, 0) + 1

    def _close(self) -> None:
        if self.tar is None:
            return
        for list_name, entries in sorted(self.parts.items()):
            data = "".join(f"{e}\n" for e in entries).encode()
            self._add(f"parts/{list_name}.chunk_{self.index:03d}.flist", data)
        self.tar.close()
        self.tar = None

    def close(self) -> list[dict]:
        self._close()
        for chunk in self.chunks:
            path = self.out / chunk["file"]
            chunk["bytes"] = path.stat().st_size
            chunk["sha256"] = sha256_file(path)
        return self.chunks


def pack(args: argparse.Namespace) -> dict:
    faces_lists, masks_lists, out = Path(args.faces_lists), Path(args.masks_lists), Path(args.out)
    lists = {name: read_list(faces_lists / f"{name}.flist") for name in LISTS}
    for split in ("train", "val"):
        images, marks = lists[f"{split}_images"], lists[f"{split}_landmarks"]
        if len(images) != len(marks):
            raise SystemExit(f"error: {split}: {len(images)} images but {len(marks)} landmark files")
        for img, lmk in zip(images, marks):
            if face_key(img) != f"{lmk.parent.name}/{lmk.stem}":
                raise SystemExit(f"error: {split}: {img} does not match {lmk}")
    held_out = {face_key(p) for p in lists["val_images"]}
    test_list = faces_lists / "test_images.flist"
    if test_list.is_file():
        held_out |= {face_key(p) for p in read_list(test_list)}
    overlap = held_out & {face_key(p) for p in lists["train_images"]}
    if overlap:
        raise SystemExit(f"error: {len(overlap)} val/test faces are in the train list, e.g. "
                         f"{min(overlap)}; re-run `inclg data split`")

    rng = random.Random(args.seed)

    def subset(split: str, limit: int) -> list[tuple[Path, Path]]:
        pairs = list(zip(lists[f"{split}_images"], lists[f"{split}_landmarks"]))
        order = list(range(len(pairs)))
        rng.shuffle(order)
        if limit > 0:
            order = order[:limit]
        return [pairs[i] for i in order]

    val_pairs = subset("val", args.max_val)
    train_pairs = subset("train", args.max_train)

    mask_lists = sorted(p for p in masks_lists.glob("*_masks*.flist")
                        if p.name.startswith(("train_masks", "val_masks")))
    if not any(p.name == "train_masks.flist" for p in mask_lists):
        raise SystemExit(f"error: {masks_lists} has no train_masks.flist")
    masks: dict[str, Path] = {}  # archive name -> source file
    mask_entries: dict[str, list[str]] = {}
    for mlist in mask_lists:
        entries = []
        for src in read_list(mlist):
            name = f"masks/{src.name}"
            if name in masks and masks[name].resolve() != src.resolve():
                raise SystemExit(f"error: two different masks are named {src.name}")
            masks[name] = src
            entries.append(f"../{name}")
        mask_entries[mlist.stem] = entries

    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("chunk_*.tar"):
        stale.unlink()
    writer = ChunkWriter(out, int(args.chunk_mib * 1024 * 1024))
    # the mask lists go whole into chunk_000's parts (masks are small and all of them are needed)
    for list_name, entries in mask_entries.items():
        writer.parts[list_name] = list(entries)
    for name, src in sorted(masks.items()):
        writer.add_group([(name, src.read_bytes())], {}, "masks", "all")
    if writer.index != 0:
        raise SystemExit("error: the masks do not fit into one chunk; raise --chunk-mib")
    seen_names: set[str] = set()
    sources: dict[tuple[int, str], list[str]] = {}  # (chunk, list) -> original crop paths
    for split, pairs in (("val", val_pairs), ("train", train_pairs)):
        for n, (img, lmk) in enumerate(pairs):
            data, suffix = encode_image(img, args.format, args.quality)
            key = face_key(img)
            name = f"images/{key}{suffix}"
            if name in seen_names:
                raise SystemExit(f"error: two faces map to {name}")
            seen_names.add(name)
            writer.add_group(
                [(name, data), (f"landmarks/{key}.txt", lmk.read_bytes())],
                {f"{split}_images": f"../{name}", f"{split}_landmarks": f"../landmarks/{key}.txt"},
                "faces", split)
            for kind, src in (("images", img), ("landmarks", lmk)):
                sources.setdefault((writer.index, f"{split}_{kind}"), []).append(str(src.resolve()))
            if args.verbose and n % 1000 == 999:
                print(f"{split}: {n + 1}/{len(pairs)} faces, chunk {writer.index}", file=sys.stderr)
    chunks = writer.close()
    # which original crops each chunk carries: the privacy audit's members are the train faces
    # of the chunks that were shipped (cat sources/train_images.chunk_{000..k}.flist)
    source_dir = out / "sources"
    if source_dir.is_dir():
        for stale in source_dir.glob("*.flist"):
            stale.unlink()
    source_dir.mkdir(exist_ok=True)
    for (index, list_name), paths in sorted(sources.items()):
        (source_dir / f"{list_name}.chunk_{index:03d}.flist").write_text(
            "".join(f"{p}\n" for p in paths))
    manifest = {
        "format": "inclg-training-chunks/1",
        "seed": args.seed,
        "options": {"max_train": args.max_train, "max_val": args.max_val, "format": args.format,
                    "quality": args.quality, "chunk_mib": args.chunk_mib},
        "sources": {"faces_lists": str(faces_lists.resolve()),
                    "masks_lists": str(masks_lists.resolve())},
        "available": {"train": len(lists["train_images"]), "val": len(lists["val_images"])},
        "counts": {"train": len(train_pairs), "val": len(val_pairs), "masks": len(masks),
                   **{f"list:{k}": len(v) for k, v in mask_entries.items()}},
        "bytes": sum(c["bytes"] for c in chunks),
        "chunks": chunks,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def unpack(args: argparse.Namespace) -> dict:
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    manifest = json.loads(Path(args.manifest).read_text()) if args.manifest else None
    known = {c["file"]: c for c in manifest["chunks"]} if manifest else {}
    for chunk in args.chunks:
        chunk = Path(chunk)
        if manifest is not None:
            if chunk.name not in known:
                raise SystemExit(f"error: {chunk.name} is not in the manifest")
            if sha256_file(chunk) != known[chunk.name]["sha256"]:
                raise SystemExit(f"error: {chunk} does not match its sha256 in the manifest")
        with tarfile.open(chunk) as tar:
            for member in tar.getmembers():
                if not member.isfile() or member.name.startswith("/") or ".." in member.name.split("/"):
                    raise SystemExit(f"error: {chunk}: unsafe member {member.name!r}")
            tar.extractall(dest, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(dest)
        (dest / "parts" / f"{chunk.stem}.done").write_text(chunk.name + "\n")
    return rebuild_lists(dest)


def rebuild_lists(dest: Path) -> dict:
    """Concatenate the list parts of every unpacked chunk, in chunk order."""
    parts = sorted((dest / "parts").glob("*.chunk_*.flist"),
                   key=lambda p: (p.name.rsplit(".chunk_", 1)[0], p.name))
    merged: dict[str, list[str]] = {}
    for part in parts:
        list_name = part.name.rsplit(".chunk_", 1)[0]
        merged.setdefault(list_name, []).extend(
            x for x in part.read_text().splitlines() if x.strip())
    (dest / "lists").mkdir(exist_ok=True)
    for list_name, entries in merged.items():
        (dest / "lists" / f"{list_name}.flist").write_text("".join(f"{e}\n" for e in entries))
    groups = sorted(n for n in merged if n.startswith("val_masks_"))
    if groups:  # mask i of validation is i mod n: interleave the ratio groups so that any
        # val_max_images covers them equally
        lists = [merged[n] for n in groups]
        merged["val_masks_mixed"] = [e for row in zip(*lists) for e in row]
    for list_name in ("val_masks_mixed",):
        if list_name in merged:
            (dest / "lists" / f"{list_name}.flist").write_text(
                "".join(f"{e}\n" for e in merged[list_name]))
    counts = {name: len(entries) for name, entries in sorted(merged.items())}
    chunks = sorted(p.stem for p in (dest / "parts").glob("*.done"))
    summary = {"dest": str(dest), "chunks": chunks, "lists": counts}
    (dest / "lists" / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="write chunk_NNN.tar + manifest.json")
    p.add_argument("--faces-lists", required=True, help="folder with {train,val,test}_*.flist")
    p.add_argument("--masks-lists", required=True, help="folder with train_masks*.flist, val_masks*.flist")
    p.add_argument("--out", required=True)
    p.add_argument("--max-train", type=int, default=12000, help="train faces (0 = all)")
    p.add_argument("--max-val", type=int, default=512, help="val faces (0 = all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("jpg", "png", "copy"), default="jpg")
    p.add_argument("--quality", type=int, default=95)
    p.add_argument("--chunk-mib", type=float, default=60.0)
    p.add_argument("--verbose", action="store_true")
    u = sub.add_parser("unpack", help="extract chunks and rebuild DEST/lists/*.flist")
    u.add_argument("chunks", nargs="*", help="chunk_NNN.tar files (none: only rebuild the lists)")
    u.add_argument("--dest", required=True)
    u.add_argument("--manifest", help="manifest.json to check sha256 against")
    args = parser.parse_args(argv)
    result = pack(args) if args.command == "pack" else unpack(args)
    if args.command == "pack":
        brief = {k: result[k] for k in ("counts", "bytes")}
        brief["chunks"] = [{k: c[k] for k in ("file", "bytes", "faces")} for c in result["chunks"]]
        print(json.dumps(brief, indent=1))
    else:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
