#!/usr/bin/env bash
# Run the `inclg` CLI from this checkout without installing it (the GPU machine has the runtime
# dependencies but no network, so `pip install -e .` cannot fetch the build backend).
# `exec` keeps the PID, so `timeout -s TERM` reaches the trainer, which checkpoints and exits.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -c 'import sys; sys.argv[0] = "inclg"; from inclg.cli import app; app()' "$@"
