#!/usr/bin/env bash
# The accuracy runs of docs/strong-network.md in one go on one GPU (planned for under 10 minutes):
#
#   bash benchmarks/accuracy_check.sh DATA_DIR [OUT_DIR]
#
# DATA_DIR holds train.csv(.gz) and test.csv(.gz). It prints, and keeps in OUT_DIR/accuracy_check.log:
#   1. `ensemble --recipes best.yaml strong.yaml --seeds 42 43 44 --data.val_fraction 0.1`: six
#      networks on validation split 42, PARALLEL at a time on the device, and their wall time;
#   2. benchmarks/seed_accuracy.py on each recipe's seeds (goal 0.9972) and on all six as one mixed
#      ensemble (goal 0.9978), from one view and with the one-pixel shifts;
#   3. the all-rows submission runs: the same ensemble trained on every row (its submission and wall
#      time), and the best single recipe (best.yaml's seed-42 member) predicting alone;
#   4. if time is left: strong.yaml for 45 epochs (Deotte's length) on the split, scored alone and
#      mixed with best.yaml's networks of part 1.
# Runs from the source tree (no install). Try it on a CPU first, shortened, with a small DATA_DIR:
#   DEVICE=cpu EPOCHS=1 LIMIT=2 PARALLEL=2 SEEDS="42 43" bash benchmarks/accuracy_check.sh SMALL_DATA /tmp/acc
set -euo pipefail

DATA=$(cd "${1:?usage: bash benchmarks/accuracy_check.sh DATA_DIR [OUT_DIR]}" && pwd)
OUT=${2:-accuracy_check}
REPO=$(cd "$(dirname "$0")/.." && pwd)
DEVICE=${DEVICE:-cuda}    # cuda, or cpu to try the script
PARALLEL=${PARALLEL:-6}   # networks trained at once
SEEDS=${SEEDS:-42 43 44}
EPOCHS=${EPOCHS:-}        # default: each recipe's own length
LIMIT=${LIMIT:-}          # training batches an epoch (trying the script); default: all
LONG_EPOCHS=${LONG_EPOCHS:-45}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec > >(tee "$OUT/accuracy_check.log") 2>&1
read -r -a seeds <<< "$SEEDS"
common=(--data.data_dir "$DATA" --data.download false --trainer.accelerator "$([ "$DEVICE" = cuda ] && echo gpu || echo cpu)"
        --trainer.enable_progress_bar false --trainer.enable_model_summary false
        ${LIMIT:+--trainer.limit_train_batches "$LIMIT"})

echo "== 0. machine"
nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
python -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')"

# ensemble NAME EPOCHS ARGS...: the package's ensemble command in OUT/NAME (log OUT/NAME.log), timed.
ensemble() {
    local name=$1 epochs=$2 start=$SECONDS
    shift 2
    mkdir -p "$OUT/$name"
    (cd "$OUT/$name" && python -m digit_recognizer ensemble --seeds "${seeds[@]}" --parallel "$PARALLEL" "${common[@]}" \
        ${epochs:+--trainer.max_epochs "$epochs"} --submission.path "$OUT/$name/submission.csv" "$@" > "$OUT/$name.log" 2>&1)
    echo "$name: $((SECONDS - start)) s wall ($(grep -c . "$OUT/$name/submission.csv") lines in its submission.csv)"
}
# members NAME: the checkpoints the ensemble in OUT/NAME trained, in its order (recipe by recipe).
members() {
    sed -n 's/^ensemble member (.*): \(.*\.ckpt\)$/\1/p' "$OUT/$1.log" | while read -r path; do
        [[ $path = /* ]] && echo "$path" || echo "$OUT/$1/$path"
    done
}
score() {  # score GOAL [ENSEMBLE_GOAL] CHECKPOINT...
    local goal=$1 ensemble_goal=$2
    shift 2
    python "$REPO/benchmarks/seed_accuracy.py" --data-dir "$DATA" --goal "$goal" ${ensemble_goal:+--ensemble-goal "$ensemble_goal"} "$@" 2>/dev/null
}

echo "== 1. best.yaml and strong.yaml, seeds ${seeds[*]}, validation split 42"
ensemble split "$EPOCHS" --recipes best.yaml strong.yaml --data.val_fraction 0.1
mapfile -t split < <(members split)
n=${#seeds[@]}

echo "== 2. validation accuracy (mean over the seeds, and the ensembles)"
echo "-- best.yaml";  score 0.9972 "" "${split[@]:0:n}"
echo "-- strong.yaml"; score 0.9972 "" "${split[@]:n:n}"
echo "-- mixed ensemble of all ${#split[@]}"; score 0.9972 0.9978 "${split[@]}"

echo "== 3. all-rows submission runs"
ensemble all-rows "$EPOCHS" --recipes best.yaml strong.yaml
mapfile -t all_rows < <(members all-rows)
start=$SECONDS
(cd "$OUT/all-rows" && python -m digit_recognizer predict --config best.yaml --ckpt_path "${all_rows[0]}" "${common[@]}" \
    --submission.path "$OUT/all-rows/submission-best-seed${seeds[0]}.csv" > "$OUT/predict-best.log" 2>&1)
echo "best.yaml seed ${seeds[0]} alone (trained in part 3's ensemble): predict $((SECONDS - start)) s, \
$(grep -c . "$OUT/all-rows/submission-best-seed${seeds[0]}.csv") lines in its submission"

if [ "$SECONDS" -lt 400 ]; then
    echo "== 4. strong.yaml for $LONG_EPOCHS epochs on the split"
    ensemble long "$LONG_EPOCHS" --recipes strong.yaml --data.val_fraction 0.1
    mapfile -t long < <(members long)
    echo "-- strong.yaml, $LONG_EPOCHS epochs"; score 0.9972 "" "${long[@]}"
    echo "-- mixed with best.yaml's networks of part 1"; score 0.9972 0.9978 "${split[@]:0:n}" "${long[@]}"
else
    echo "== 4. skipped: $SECONDS s used"
fi
echo "accuracy_check: $SECONDS s in all; logs, runs and submissions in $OUT"
