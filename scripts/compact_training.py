#!/usr/bin/env python3
"""Run the compact CPU training across sessions: start (or resume) it in the background, stop it
with a checkpoint, and keep one small resumable checkpoint in git.

    python3 scripts/compact_training.py start    # nice'd, in the background; log in runs/
    python3 scripts/compact_training.py status   # iteration, images seen, hours, last validation
    python3 scripts/compact_training.py stop     # SIGTERM -> checkpoint -> copy into training/

A session's processes end with the session, and the next one may be on a new machine with an
empty runs/ folder. `stop` copies the run's newest checkpoint to ``training/compact_cpu/``, one
path that each stop overwrites (commit it); `start` resumes from whichever is newer, the run's
own latest checkpoint or that committed copy. The run itself is ``inclg train --config
configs/compact_cpu.yaml`` with its checkpoints in runs/compact_cpu.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "compact_cpu.yaml"
RUN = ROOT / "runs" / "compact_cpu"
KEPT = ROOT / "training" / "compact_cpu"
PID = RUN / "train.pid"
LOG = ROOT / "runs" / "compact_cpu.log"


def iteration_of(checkpoint: Path | None) -> int:
    if checkpoint is None or not (checkpoint / "info.json").is_file():
        return -1
    return int(json.loads((checkpoint / "info.json").read_text())["iteration"])


def resume_point() -> Path | None:
    """The newer of the run's latest checkpoint and the committed copy (None: a fresh start)."""
    from inclg.train.checkpoint import latest_checkpoint

    local = latest_checkpoint(RUN)
    kept = KEPT if (KEPT / "state.pt").is_file() else None
    return max((p for p in (local, kept) if p is not None), key=iteration_of, default=None)


def running() -> int | None:
    """The training's process id if it is alive."""
    try:
        pid = int(PID.read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def start(threads: int, niceness: int, cpus: str | None) -> int:
    if (pid := running()) is not None:
        print(f"already running (pid {pid}); log {LOG}")
        return 0
    resume = resume_point()
    command = ["nice", "-n", str(niceness), sys.executable, "-m", "inclg", "train", "--config",
               str(CONFIG)]
    if cpus:  # a core of its own: other work on the machine then cannot stall its threads
        command = ["taskset", "-c", cpus, *command]
    if resume is not None:
        command += ["--resume", str(resume)]
    RUN.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with open(LOG, "ab") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env=env, start_new_session=True)
    PID.write_text(str(process.pid))
    where = f"resuming {resume} (iteration {iteration_of(resume)})" if resume else "from scratch"
    print(f"started pid {process.pid}, {where}; log {LOG}")
    return 0


def keep(checkpoint: Path) -> None:
    """Copy `checkpoint` to KEPT, replacing the previous copy only once the new one is whole."""
    KEPT.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".compact_cpu.", dir=KEPT.parent))
    try:
        shutil.copytree(checkpoint, tmp / "new")
        old = tmp / "old"
        if KEPT.exists():
            os.replace(KEPT, old)
        os.replace(tmp / "new", KEPT)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stop(timeout: float) -> int:
    from inclg.train.checkpoint import latest_checkpoint

    pid = running()
    if pid is not None:
        os.kill(pid, signal.SIGTERM)  # the loop finishes its step and checkpoints
        deadline = time.monotonic() + timeout
        while running() is not None and time.monotonic() < deadline:
            time.sleep(1)
        if running() is not None:
            print(f"error: pid {pid} did not stop within {timeout:.0f} s", file=sys.stderr)
            return 1
    latest = latest_checkpoint(RUN)
    if latest is None or iteration_of(latest) <= iteration_of(KEPT):
        print(f"nothing newer to keep (kept: iteration {iteration_of(KEPT)})")
        return 0
    keep(latest)
    size = sum(p.stat().st_size for p in KEPT.rglob("*") if p.is_file())
    print(f"kept iteration {iteration_of(KEPT)} in {KEPT.relative_to(ROOT)} "
          f"({size / 2**20:.1f} MiB); commit it")
    return 0


def status() -> int:
    import torch

    point = resume_point()
    pid = running()
    print(f"training: {'running, pid ' + str(pid) if pid else 'not running'}")
    if point is None:
        print("no checkpoint yet")
        return 0
    state = torch.load(point / "state.pt", map_location="cpu", weights_only=True)
    info = json.loads((point / "info.json").read_text())
    print(f"newest checkpoint: {point} - iteration {state['iteration']}, images seen "
          f"{state['samples_seen']}, {state.get('train_seconds', 0) / 3600:.2f} h in training")
    best = RUN / "checkpoints" / "best.json"
    if best.is_file():
        print(f"best: {best.read_text().strip()}")
    if info.get("validation"):
        print(f"validation at that checkpoint: {info['validation']}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for training")
    parser.add_argument("--nice", type=int, default=10,
                        help="scheduling niceness of the training (0 = as important as the rest)")
    parser.add_argument("--cpus", default=None,
                        help="pin the training to these cores (taskset list, e.g. 0); with "
                        "--threads 1 it keeps its speed while tests run on the other core")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait on stop")
    args = parser.parse_args()
    if args.action == "start":
        return start(args.threads, args.nice, args.cpus)
    if args.action == "stop":
        return stop(args.timeout)
    return status()


if __name__ == "__main__":
    sys.exit(main())
