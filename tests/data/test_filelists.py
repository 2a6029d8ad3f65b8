import json

import pytest

from inclg.data import DataError
from inclg.data.faces import FaceJob, FaceOptions
from inclg.data.filelists import SPLITS, read_flist, split_keys, split_prepared, write_flist


def test_flist_round_trip_with_relative_entries(tmp_path):
    write_flist(tmp_path / "a.flist", ["/abs/one.png", "rel/two.png"])
    assert (tmp_path / "a.flist").read_text() == "/abs/one.png\nrel/two.png\n"
    paths = read_flist(tmp_path / "a.flist")
    assert str(paths[0]) == "/abs/one.png" and paths[1] == tmp_path / "rel" / "two.png"
    with pytest.raises(DataError, match="missing.flist cannot be read"):
        read_flist(tmp_path / "missing.flist")


def _groups(n):
    return {f"g{i:03d}": [f"k{i:03d}"] for i in range(n)}


def test_split_is_disjoint_complete_sized_and_deterministic():
    groups = _groups(200)
    groups["g000"] = ["k000", "k000-copy"]  # identical bytes stay together
    split = split_keys(groups, val=0.1, test=0.05, seed=0)
    everything = [k for s in SPLITS for k in split[s]]
    assert sorted(everything) == sorted(k for keys in groups.values() for k in keys)
    assert len(everything) == len(set(everything))
    assert len(split["val"]) in (20, 21) and len(split["test"]) in (10, 11)
    assert any({"k000", "k000-copy"} <= set(split[s]) for s in SPLITS)
    shuffled = dict(reversed(list(groups.items())))
    assert split_keys(shuffled, 0.1, 0.05, seed=0) == split
    assert split_keys(groups, 0.1, 0.05, seed=1) != split


def test_split_fractions_are_checked():
    with pytest.raises(DataError, match="sum to less than 1"):
        split_keys(_groups(3), 0.6, 0.5)


def test_split_a_prepared_folder_per_source(photo_dirs, tmp_path):
    prepared = tmp_path / "prepared"
    list(FaceJob(photo_dirs, prepared, FaceOptions(detector="stub")).run(0))
    counts = split_prepared(prepared, tmp_path / "lists", val=0.5, test=0.0, seed=0)
    assert counts == {
        "train": {"celeba": 1, "utkface": 1},
        "val": {"celeba": 1, "utkface": 1},
        "test": {"celeba": 0, "utkface": 0},
    }
    images = read_flist(tmp_path / "lists" / "train_images.flist")
    landmarks = read_flist(tmp_path / "lists" / "train_landmarks.flist")
    assert all(p.is_absolute() and p.is_file() for p in images + landmarks)
    assert [p.relative_to(prepared / "images").with_suffix("") for p in images] == [
        p.relative_to(prepared / "landmarks").with_suffix("") for p in landmarks
    ]
    assert json.loads((tmp_path / "lists" / "split.json").read_text())["val"] == 0.5
    with pytest.raises(DataError, match="run `inclg data faces` first"):
        split_prepared(tmp_path / "empty", tmp_path / "lists2")
