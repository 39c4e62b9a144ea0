#!/usr/bin/env bash
# The converged real-data runs of docs/pretrained-backbones.md, one after another: genie with the
# MiniLM BERT2BERT (text and index targets) and the same-encoder baselines, each trained until dev
# stops improving (patience 3 evaluations, one per epoch, capped at 20 epochs). A genie run that
# is stopped resumes exactly when this is run again; a finished one only reprints its metrics; a
# baseline with a result file is skipped. Needs `make install`, the data folders of
# docs/pretrained-backbones.md and backbones/minilm-bert2bert (`genie backbone --encoder minilm`).
#   bash bench/converged_runs.sh [release ...]      (releases: mner2017 mner2015 mnre gmner2)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
CAP="train.epochs=20 train.eval_every_epochs=1 train.patience=3"
MINILM="train.learning_rate=1e-4 train.batch_size=16 train.mixed_precision=bf16 train.warmup_ratio=0.1"
BASELINE="--epochs 20 --patience 3 --learning-rate 5e-5 --batch-size 16 --precision bf16"

genie() {  # task data format output [extra]; the result and dev curve kept in bench/converged/
    make --no-print-directory train TASK=$1 DATA=data/$2 MODEL=backbones/minilm-bert2bert \
        ARGS="target_format=$3 $CAP $MINILM train.output_dir=runs/converged/$4 ${5:-}" || return
    mkdir -p bench/converged
    cp runs/converged/$4/test_metrics.json bench/converged/$4.test_metrics.json
    grep '"dev"\|stopped' runs/converged/$4/metrics.jsonl > bench/converged/$4.dev.jsonl
}
baseline() {  # script data output
    [ -f bench/baselines/results/$3.json ] || $PY -m bench.baselines.$1 --data data/$2 $BASELINE \
        --out bench/baselines/results/$3.json --predictions logs/$3.predictions.jsonl
}

releases=("$@")
[ $# -gt 0 ] || releases=(mner2017 mner2015 mnre gmner2)
for release in "${releases[@]}"; do
    case $release in
        mner2017|mner2015)
            baseline tagger $release tagger-$release
            genie mner $release index $release-index
            genie mner $release text $release-text decode.constrained=false ;;
        mnre)
            baseline relation mnre relation-mnre
            genie mre mnre text mnre-text decode.constrained=false ;;
        gmner2)
            baseline tagger gmner2 tagger-gmner2
            genie gmner gmner2 index gmner2-index ;;
    esac
done
