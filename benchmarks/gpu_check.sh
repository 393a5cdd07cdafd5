#!/usr/bin/env bash
# The GPU measurements of docs/performance.md in one run of under 10 minutes on one GPU:
#
#   bash benchmarks/gpu_check.sh DATA_DIR [OUT_DIR]
#
# DATA_DIR holds train.csv(.gz) and test.csv(.gz). It prints, and keeps in OUT_DIR/gpu_check.log:
#   1. throughput of the Trainer path against a plain PyTorch loop, with 1 and K optimizer steps per
#      Lightning batch (data.steps_per_batch), the ratio and the per-step overhead;
#   2. the wall time of the reference recipe's whole `fit` (30 epochs with validation, figures and
#      checkpoints), eager (1 step a batch) against fast (K steps a batch), seed 42, one at a time;
#   3. the last-epoch val/acc of 3 seeds (42 from part 2; 43 and 44 trained four at a time on the
#      GPU), eager against fast, and whether the means agree within 0.001;
#   4. if time is left: the fast path with `--model.compile reduce-overhead` (CUDA graphs), seed 42.
# Needs the package's requirements (lightning, torchmetrics, jsonargparse, pandas, tensorboard, ...);
# runs from the source tree (no install). Try it on a CPU first, shortened:
#   DEVICE=cpu EPOCHS=1 LIMIT=4 STEPS=16 bash benchmarks/gpu_check.sh DATA_DIR /tmp/gpu_check
set -euo pipefail

DATA=$(cd "${1:?usage: bash benchmarks/gpu_check.sh DATA_DIR [OUT_DIR]}" && pwd)
OUT=${2:-gpu_check}
REPO=$(cd "$(dirname "$0")/.." && pwd)
DEVICE=${DEVICE:-cuda}    # cuda, or cpu to try the script
K=${K:-64}                # optimizer steps per Lightning batch on the fast path
EPOCHS=${EPOCHS:-30}      # the reference recipe's length
STEPS=${STEPS:-400}       # timed steps of the throughput benchmark
LIMIT=${LIMIT:-}          # training batches an epoch (trying the script); default: all
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
ACCELERATOR=$([ "$DEVICE" = cuda ] && echo gpu || echo cpu)
exec > >(tee "$OUT/gpu_check.log") 2>&1

echo "== 0. machine"
nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
python -c "import torch, lightning; print('torch', torch.__version__, '| lightning', lightning.__version__, '|', \
torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')"

echo "== 1. throughput (images/s; best of 2 interleaved runs of $STEPS steps)"
for steps_per_batch in 1 "$K"; do
    python "$REPO/benchmarks/throughput.py" --device "$DEVICE" --data-dir "$DATA" --steps "$STEPS" --warmup 48 \
        --repeats 2 --steps-per-batch "$steps_per_batch" --log-dir "$OUT/throughput" \
        $([ "$steps_per_batch" = 1 ] && echo --bare || echo --overhead) 2>/dev/null \
        | grep -E '^(device|digit_recognizer|bare|plain|lightning/plain|per-step)'
done

# fit NAME SEED [ARGS...]: the reference recipe in OUT/NAME-seedSEED/version_0, its log beside it.
fit() {
    local name=$1 seed=$2
    shift 2
    (cd "$OUT" && python -m digit_recognizer fit --config cnn.yaml --seed_everything "$seed" \
        --data.data_dir "$DATA" --data.download false --trainer.accelerator "$ACCELERATOR" \
        --trainer.max_epochs "$EPOCHS" ${LIMIT:+--trainer.limit_train_batches "$LIMIT"} \
        --trainer.enable_progress_bar false --trainer.enable_model_summary false \
        --trainer.logger.init_args.name "$name-seed$seed" "$@" > "$OUT/$name-seed$seed.log" 2>&1)
}
timed_fit() {
    local start=$SECONDS
    fit "$@"
    echo "$1, seed $2: $((SECONDS - start)) s wall for the whole fit (start-up, $EPOCHS epochs, validation, checkpoints)"
}

echo "== 2. reference recipe, $EPOCHS epochs, one run at a time"
timed_fit eager 42
timed_fit fast 42 --data.steps_per_batch "$K"

echo "== 3. accuracy of 3 seeds (43 and 44 trained four at a time)"
runs=()
for seed in 43 44; do
    OMP_NUM_THREADS=4 fit eager "$seed" &
    runs+=($!)
    OMP_NUM_THREADS=4 fit fast "$seed" --data.steps_per_batch "$K" &
    runs+=($!)
done
wait "${runs[@]}"  # these four only: a bare `wait` would also wait for the log's tee
python - "$OUT" <<'EOF'
import statistics
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

out = Path(sys.argv[1])
means = {}
for mode in ("eager", "fast"):
    last = []
    for seed in (42, 43, 44):
        events = EventAccumulator(str(out / f"{mode}-seed{seed}" / "version_0"))
        events.Reload()
        last.append(events.Scalars("val/acc")[-1].value)
    means[mode] = statistics.mean(last)
    print(f"{mode}: last-epoch val/acc of seeds 42 43 44: {' '.join(f'{a:.4f}' for a in last)}; mean {means[mode]:.4f}")
difference = means["fast"] - means["eager"]
print(f"fast - eager: {difference:+.4f} (goal: within 0.001, {'met' if abs(difference) <= 0.001 else 'not met'})")
EOF

if [ "$SECONDS" -lt 420 ]; then
    echo "== 4. fast path with CUDA graphs (--model.compile reduce-overhead)"
    timed_fit compiled 42 --data.steps_per_batch "$K" --model.compile reduce-overhead
else
    echo "== 4. skipped: $SECONDS s used"
fi
echo "gpu_check: $SECONDS s in all; logs and runs in $OUT"
