"""Issue 7 on CPU: pack -> unpack -> `inclg train` -> export fp16 shards -> predict -> evaluate.

The same steps as the GPU plan in docs/DEFAULT_MODEL.md, with a tiny network, 16 train / 8 val
synthetic faces and a random (full-size) VGG16 as feature network. The training command runs in
a subprocess that refuses to import optuna, gradio, dlib, onnx and lpips, as on the GPU machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
PHOTO = ROOT / "tests" / "infer" / "fixtures" / "face_300x240.jpg"
sys.path.insert(0, str(SCRIPTS))

import export_default
import make_results_grid
import pack_training_data

BLOCKED = ("optuna", "gradio", "dlib", "face_recognition_models", "onnx", "onnxruntime", "lpips")
BLOCKING_LAUNCHER = f"""
import sys
for name in {BLOCKED!r}:
    sys.modules[name] = None  # `import name` raises ImportError, find_spec answers None
from inclg.cli import app
sys.argv[0] = 'inclg'
app()
"""
VGG16_CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256),
               (12, 256, 256), (14, 256, 256), (17, 256, 512), (19, 512, 512), (21, 512, 512),
               (24, 512, 512), (26, 512, 512), (28, 512, 512)]


def make_prepared(root: Path, counts: dict[str, int]) -> tuple[Path, Path]:
    """A folder like `inclg data faces` + `split` + `masks` writes, with synthetic 256^2 faces."""
    from inclg.data.align import template
    from inclg.data.filelists import write_flist
    from inclg.data.landmarks import save_landmarks
    from inclg.io.images import save_image

    rng = np.random.default_rng(0)
    lists = root / "faces" / "lists"
    lists.mkdir(parents=True)
    n = 0
    for split, count in counts.items():
        images, marks = [], []
        for _ in range(count):
            src = "celeba" if n % 2 else "utkface"
            image = root / "faces" / "images" / src / f"{n:05d}.png"
            image.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.clip(rng.normal(128, 40, (256, 256, 3)), 0, 255).astype(np.uint8)
            save_image(image, pixels)
            mark = root / "faces" / "landmarks" / src / f"{n:05d}.txt"
            save_landmarks(mark, template(256) + rng.normal(0, 1, (68, 2)))
            images.append(image)
            marks.append(mark)
            n += 1
        write_flist(lists / f"{split}_images.flist", images)
        write_flist(lists / f"{split}_landmarks.flist", marks)
    masks = root / "masks"
    masks.mkdir()
    by_split: dict[str, list[Path]] = {"train": [], "val": []}
    for k in range(6):
        mask = np.zeros((256, 256), np.float32)
        mask[100 : 120 + 20 * k, 60:200] = 1
        path = root / "shared_masks" / f"{k:05d}.png"
        path.parent.mkdir(exist_ok=True)
        save_image(path, mask)
        by_split["val" if k % 3 == 0 else "train"].append(path)
    for split, paths in by_split.items():
        write_flist(masks / f"{split}_masks.flist", paths)
        write_flist(masks / f"{split}_masks_0-20.flist", paths[:1])
    return lists, masks


def random_vgg16(path: Path) -> Path:
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    state = {}
    for index, cin, cout in VGG16_CONVS:
        state[f"features.{index}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * 0.05
        state[f"features.{index}.bias"] = torch.zeros(cout)
    save_file(state, str(path))
    return path


def test_pack_is_deterministic_disjoint_and_chunked(tmp_path):
    lists, masks = make_prepared(tmp_path / "prep", {"train": 12, "val": 4, "test": 4})
    args = ["pack", "--faces-lists", str(lists), "--masks-lists", str(masks),
            "--max-train", "10", "--max-val", "0", "--chunk-mib", "0.25"]
    assert pack_training_data.main([*args, "--out", str(tmp_path / "a")]) == 0
    assert pack_training_data.main([*args, "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "manifest.json").read_text())
    b = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert [c["sha256"] for c in a["chunks"]] == [c["sha256"] for c in b["chunks"]]
    assert len(a["chunks"]) > 1 and all(c["bytes"] <= 0.25 * 2**20 for c in a["chunks"])
    assert a["counts"]["train"] == 10 and a["counts"]["val"] == 4 and a["counts"]["masks"] == 6
    assert a["chunks"][0]["masks"] == {"all": 6}

    # the first chunk alone is a usable (smaller) training set; all chunks give everything
    dest = tmp_path / "data"
    first = pack_training_data.main(["unpack", str(tmp_path / "a" / "chunk_000.tar"),
                                     "--manifest", str(tmp_path / "a" / "manifest.json"),
                                     "--dest", str(dest)])
    assert first == 0
    summary = json.loads((dest / "lists" / "summary.json").read_text())
    assert summary["lists"]["train_masks"] == 4 and summary["lists"]["val_masks"] == 2
    rest = sorted(str(p) for p in (tmp_path / "a").glob("chunk_*.tar"))[1:]
    pack_training_data.main(["unpack", *rest, "--manifest", str(tmp_path / "a" / "manifest.json"),
                             "--dest", str(dest)])
    from inclg.data.filelists import read_flist

    train = read_flist(dest / "lists" / "train_images.flist")
    val = read_flist(dest / "lists" / "val_images.flist")
    assert len(train) == 10 and len(val) == 4 and all(p.is_file() for p in train + val)
    assert not {p.stem for p in train} & {p.stem for p in val}
    test_names = {p.stem for p in read_flist(lists / "test_images.flist")}
    assert not test_names & {p.stem for p in train + val}
    members = [line for part in sorted((tmp_path / "a" / "sources").glob("train_images.*"))
               for line in part.read_text().splitlines()]
    assert sorted(Path(m).stem for m in members) == sorted(p.stem for p in train)
    assert all(p.suffix == ".jpg" for p in train)
    marks = read_flist(dest / "lists" / "train_landmarks.flist")
    assert [p.stem for p in marks] == [p.stem for p in train]

    # a corrupted chunk is refused
    bad = tmp_path / "a" / "chunk_000.tar"
    bad.write_bytes(bad.read_bytes()[:-1] + b"x")
    with pytest.raises(SystemExit, match="sha256"):
        pack_training_data.main(["unpack", str(bad), "--manifest",
                                 str(tmp_path / "a" / "manifest.json"), "--dest", str(dest)])


def test_pack_refuses_a_val_face_in_train(tmp_path):
    lists, masks = make_prepared(tmp_path / "prep", {"train": 3, "val": 2})
    val = (lists / "val_images.flist").read_text().splitlines()
    with open(lists / "train_images.flist", "a") as handle:
        handle.write(val[0] + "\n")
    marks = (lists / "val_landmarks.flist").read_text().splitlines()
    with open(lists / "train_landmarks.flist", "a") as handle:
        handle.write(marks[0] + "\n")
    with pytest.raises(SystemExit, match="val/test faces are in the train list"):
        pack_training_data.main(["pack", "--faces-lists", str(lists), "--masks-lists", str(masks),
                                 "--out", str(tmp_path / "out")])


def _run(args: list[str], cwd: Path, blocked: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "2"}
    launcher = BLOCKING_LAUNCHER if blocked else "from inclg.cli import app; app()"
    command = [sys.executable, "-c", launcher, *args]
    result = subprocess.run(command, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.dlib
def test_pipeline_end_to_end_on_cpu(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INCLG_HOME", str(tmp_path / "home"))  # no LPIPS / FID weights: skipped
    lists, masks = make_prepared(tmp_path / "prep", {"train": 16, "val": 8, "test": 8})
    chunks = tmp_path / "carry"
    pack_training_data.main(["pack", "--faces-lists", str(lists), "--masks-lists", str(masks),
                             "--out", str(chunks), "--max-train", "16", "--max-val", "0"])
    manifest = json.loads((chunks / "manifest.json").read_text())
    data = tmp_path / "data"
    pack_training_data.main(["unpack", *sorted(map(str, chunks.glob("chunk_*.tar"))),
                             "--manifest", str(chunks / "manifest.json"), "--dest", str(data)])
    vgg = random_vgg16(tmp_path / "vgg16.safetensors")

    run = tmp_path / "run"
    overrides = [f"data.{split}_{kind}={data / 'lists' / f'{split}_{kind}.flist'}"
                 for split in ("train", "val") for kind in ("images", "landmarks", "masks")]
    overrides += [f"loss.feature_weights={vgg}", "loss.feature_net=vgg16",
                  "train.max_iterations=3", "train.val_every=3", "train.checkpoint_every=2",
                  "train.sample_every=0"]
    out = _run(["train", "--config", str(ROOT / "configs" / "tiny.yaml"), "--out", str(run),
                "--resume", "auto", *overrides], tmp_path, blocked=True)
    assert "iteration 3" in out.stdout
    (run / "gpu_seconds.txt").write_text("30\n30\n")

    model = tmp_path / "model"
    assert export_default.main(["--run", str(run), "--out", str(model), "--max-shard-mib", "0.05",
                                "--max-file-mib", "0.1",
                                "--gpu-seconds-file", str(run / "gpu_seconds.txt")]) == 0
    config = json.loads((model / "config.json").read_text())
    assert config["dtype"] == "float16" and len(config["sha256"]) > 1  # sharded
    assert all(p.stat().st_size <= 0.1 * 2**20 for p in model.glob("*.safetensors"))
    meta = config["metadata"]
    assert meta["trained"] is True and meta["model_id"] == "inclg-default-v1"
    assert meta["iteration"] == 3 and meta["images_seen"] == 6 and meta["gpu_minutes"] == 1.0
    assert meta["source_checkpoint"] == "iter_00000003" and meta["config"]["train"]["batch_size"] == 2
    assert "psnr_hole" in meta["validation"]  # the figures of the validation it was picked by
    assert "cpu" not in meta  # the exporting machine is not the one that trained

    # a checkpoint copied out of its run (training/compact_cpu) whose info.json has no
    # validation: the figures come from the validation history it carries
    import shutil

    copied = tmp_path / "copied"
    shutil.copytree(run / "checkpoints" / "iter_00000003", copied)
    info = json.loads((copied / "info.json").read_text())
    info.pop("validation", None)
    (copied / "info.json").write_text(json.dumps(info))
    assert export_default.main(["--checkpoint", str(copied), "--out", str(tmp_path / "m2"),
                                "--max-shard-mib", "0.05"]) == 0
    meta2 = json.loads((tmp_path / "m2" / "config.json").read_text())["metadata"]
    assert meta2["validation"]["iteration"] == 3 and "source_run" not in meta2

    from inclg.weights import load_model

    loaded = load_model(model)
    assert loaded.trained and loaded.warning is None

    photo_dir = tmp_path / "photo"
    photo_dir.mkdir()
    (photo_dir / PHOTO.name).write_bytes(PHOTO.read_bytes())
    _run(["predict", str(photo_dir / PHOTO.name), "--auto-mask", "cleft-left",
          "--weights", str(model), "--out", str(tmp_path / "pred")], tmp_path)
    report = json.loads(next((tmp_path / "pred").glob("*.json")).read_text())
    assert report["trained"] is True and report["warning"] is None
    assert report["model"]["checksum"] == loaded.checksum

    held_out = data / "lists" / "val_images.flist"
    _run(["evaluate", "--images", str(held_out), "--masks", str(data / "lists" / "val_masks.flist"),
          "--auto-mask", "lip", "--baselines", "telea", "--weights", str(model),
          "-o", str(tmp_path / "eval")], tmp_path)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    text = json.dumps(metrics)
    assert "telea" in text and "lip" in text
    grid = tmp_path / "grid.png"
    assert make_results_grid.main(["--images", str(held_out), "--weights", str(model),
                                   "--out", str(grid), "--count", "3", "--cell", "32"]) == 0
    from PIL import Image

    with Image.open(grid) as img:
        assert img.size == (8 * 32, 18 + 3 * 32)  # trained: no banner; a row per face
    capsys.readouterr()
    assert make_results_grid.main(["--images", str(held_out), "--weights", str(model),
                                   "--out", str(grid), "--count", "2", "--cell", "32",
                                   "--kinds", "cleft-bilateral,lip"]) == 0
    faces = json.loads(capsys.readouterr().out)["faces"]
    assert [f["masks"] for f in faces] == [["cleft-bilateral", "lip"]] * 2
    with tarfile.open(chunks / manifest["chunks"][0]["file"]) as tar:
        assert any(n.startswith("masks/") for n in tar.getnames())
