import json
import shutil

import numpy as np
import pytest

from inclg.data import DataError
from inclg.data.faces import FaceJob, FaceOptions, plan_sources, read_jsonl
from inclg.data.landmarks import load_landmarks
from inclg.io.images import load_rgb, save_image

STUB = FaceOptions(detector="stub")


def _run(sources, out, options=STUB, workers=0, **kw):
    job = FaceJob(sources, out, options, **kw)
    return job, list(job.run(workers))


def _snapshot(out):
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "runs.jsonl"
    }


def test_stub_pipeline_end_to_end(photo_dirs, tmp_path):
    out = tmp_path / "prepared"
    _, records = _run(photo_dirs, out)
    assert len(records) == 4 and all("reason" not in r for r in records)
    manifest = read_jsonl(out / "manifest.jsonl")
    assert sorted(r["key"] for r in manifest) == [
        "celeba/183209",
        "celeba/185337",
        "utkface/adult_30_0_4",
        "utkface/infant_1_0_0",
    ]
    record = next(r for r in manifest if r["key"] == "utkface/infant_1_0_0")
    assert record["source"].endswith("infant_1_0_0.webp") and len(record["sha256"]) == 64
    assert record["detector"] == "stub (stub)" and np.array(record["transform"]).shape == (2, 3)
    assert set(record["quality"]) >= {"outside", "eye_distance", "residual", "scale", "score"}
    crop = load_rgb(out / record["image"])
    assert crop.shape == (256, 256, 3)
    points = load_landmarks(out / record["landmarks"])
    assert points.shape == (68, 2) and (points >= 0).all() and (points < 256).all()
    assert json.loads((out / "summary.json").read_text())["accepted"] == 4
    assert json.loads((out / "settings.json").read_text())["detector"] == "stub"


def test_a_finished_run_repeated_does_nothing(photo_dirs, tmp_path):
    out = tmp_path / "prepared"
    _run(photo_dirs, out)
    before = _snapshot(out)
    job, records = _run(photo_dirs, out)
    assert job.todo == [] and job.already_done == 4 and records == []
    assert _snapshot(out) == before


def test_an_interrupted_run_resumes_where_it_stopped(photo_dirs, tmp_path):
    out = tmp_path / "prepared"
    reference = tmp_path / "reference"
    _run(photo_dirs, reference)
    job = FaceJob(photo_dirs, out, STUB)
    stream = job.run(0)
    next(stream)
    next(stream)
    stream.close()  # killed after two photos
    with open(out / "manifest.jsonl", "a") as fh:
        fh.write('{"source": "torn line of a killed wr')
    job, records = _run(photo_dirs, out)
    assert job.already_done == 2 and len(records) == 2
    assert len(read_jsonl(out / "manifest.jsonl")) == 4
    for key in ("images/celeba/183209.png", "landmarks/utkface/infant_1_0_0.txt"):
        assert (out / key).read_bytes() == (reference / key).read_bytes()


def test_other_settings_refuse_to_mix_into_a_prepared_folder(photo_dirs, tmp_path):
    out = tmp_path / "prepared"
    _run(photo_dirs, out)
    with pytest.raises(DataError, match="prepared with other settings .*size: 256 -> 128"):
        FaceJob(photo_dirs, out, FaceOptions(detector="stub", size=128))


def test_bad_photos_are_rejected_with_reasons_and_never_stop_the_run(photo_dirs, tmp_path):
    folder = photo_dirs[0]
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    save_image(folder / "blank.png", np.full((120, 120, 3), 200, np.uint8))
    photo = load_rgb(folder / "183209.webp")
    save_image(folder / "two.png", np.concatenate([photo, photo, photo], axis=1))
    save_image(folder / "tiny.png", photo[::8, ::8])
    shutil.copy(folder / "183209.webp", folder / "183209.png")  # same name, other suffix
    out = tmp_path / "prepared"
    _run(photo_dirs, out, workers=0)
    reasons = {r["key"].split("/", 1)[1]: r["reason"] for r in read_jsonl(out / "rejects.jsonl")}
    assert reasons == {
        "broken": "unreadable",
        "blank": "no_face",
        "two": "several_faces",
        "tiny": "face_too_small",
        "183209": "name_collision",
    }
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accepted"] == 4 and summary["rejected"] == 5
    broken = next(r for r in read_jsonl(out / "rejects.jsonl") if r["reason"] == "unreadable")
    assert "cannot be read as an image" in broken["detail"] and broken["sha256"]


def test_too_much_outside_is_rejected(photo_dirs, tmp_path):
    strict = FaceOptions(detector="stub", max_outside=0.05)
    _run(photo_dirs[1:], tmp_path / "prepared", strict)
    reasons = {r["reason"] for r in read_jsonl(tmp_path / "prepared" / "rejects.jsonl")}
    assert reasons == {"too_much_outside"}


def test_worker_processes_give_the_same_files_as_one_process(photo_dirs, tmp_path):
    _run(photo_dirs, tmp_path / "serial", workers=0)
    _run(photo_dirs, tmp_path / "pool", workers=2)
    serial, pool = _snapshot(tmp_path / "serial"), _snapshot(tmp_path / "pool")
    for name in ("manifest.jsonl", "rejects.jsonl"):
        assert sorted(serial.pop(name).splitlines()) == sorted(pool.pop(name).splitlines())
    assert serial == pool


def test_limit_takes_the_first_photos_in_key_order(photo_dirs, tmp_path):
    _, records = _run(photo_dirs, tmp_path / "prepared", limit=3)
    assert [r["key"] for r in records] == ["celeba/183209", "celeba/185337", "utkface/adult_30_0_4"]


def test_sources_with_the_same_folder_name_are_refused(tmp_path):
    for parent in ("a", "b"):
        (tmp_path / parent / "faces").mkdir(parents=True)
    with pytest.raises(DataError, match="both called 'faces'"):
        plan_sources([tmp_path / "a" / "faces", tmp_path / "b" / "faces"])


def test_invalid_options_are_refused():
    with pytest.raises(DataError, match="unknown border mode 'wrap'"):
        FaceOptions(border="wrap")
    with pytest.raises(DataError, match="png, jpg or webp, not 'gif'"):
        FaceOptions(image_format="gif")
