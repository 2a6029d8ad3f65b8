#!/usr/bin/env bash
# One training call on the GPU machine (docs/DEFAULT_MODEL.md): train for at most SECONDS
# (SIGTERM -> checkpoint -> clean exit), then export the best checkpoint so far as fp16 shards
# into $OUT/default, with a summary and the log tail. Every call leaves usable weights in $OUT.
#   bash scripts/gpu_train_call.sh 540
set -u
SECONDS_LIMIT=${1:-540}
RUN=${RUN:-/tmp/run}
CONFIG=${CONFIG:-configs/default_model.yaml}
OUT=${OUT:-/tmp/out}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
mkdir -p "$RUN/logs" "$OUT"
call=$(ls "$RUN/logs" | grep -c '^call_' || true)
log="$RUN/logs/call_$(printf %02d "$call").log"
start=$(date +%s)
timeout -s TERM -k 25 "$SECONDS_LIMIT" bash scripts/inclg_gpu.sh train --config "$CONFIG" \
    --out "$RUN" --resume auto > "$log" 2>&1
status=$?
echo "$(( $(date +%s) - start )) call_$call exit=$status" >> "$RUN/gpu_seconds.txt"
# the progress bar writes \r-separated updates: keep the log readable
tr '\r' '\n' < "$log" | grep -v '^ *[0-9]*%|' | tail -n 40
tr '\r' '\n' < "$log" | grep 'img/s' | tail -n 1
echo "train exit status $status (124 = stopped by timeout after its checkpoint)"
if compgen -G "$RUN/checkpoints/iter_*" > /dev/null; then
    PYTHONPATH="$ROOT/src" python3 scripts/export_default.py --run "$RUN" --out "$OUT/default" \
        --gpu-seconds-file "$RUN/gpu_seconds.txt" > "$OUT/export.json" && cat "$OUT/export.json"
    python3 - "$RUN" > "$OUT/train_summary.json" <<'PY'
import json, sys, pathlib
run = pathlib.Path(sys.argv[1])
ck = run / "checkpoints"
info = {p.name: json.loads((p / "info.json").read_text()) for p in sorted(ck.glob("iter_*"))}
best = json.loads((ck / "best.json").read_text()) if (ck / "best.json").is_file() else None
calls = (run / "gpu_seconds.txt").read_text().splitlines()
print(json.dumps({"best": best, "checkpoints": info, "training_calls": calls,
                  "training_seconds": sum(float(c.split()[0]) for c in calls)}, indent=1))
PY
fi
tr '\r' '\n' < "$log" | grep -v '^ *[0-9]*%|' | tail -n 200 > "$OUT/train_log_tail.txt"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv >> "$OUT/train_log_tail.txt" 2>&1 || true
exit 0
