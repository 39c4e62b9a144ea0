#!/usr/bin/env bash
# The converged real-data runs of docs/pretrained-backbones.md, one after another: genie with the
# MiniLM BERT2BERT (text and index targets) and the same-encoder baselines, each trained until dev
# stops improving (patience 3 evaluations, one per epoch, capped at 20 epochs). A run that is
# stopped resumes exactly when this is run again (genie from its last checkpoint, a baseline
# after its last epoch, kept in runs/baselines/); a finished genie run only reprints its metrics;
# a baseline with a result file is skipped. Needs `make install`, the data folders of
# docs/pretrained-backbones.md and backbones/minilm-bert2bert (`genie backbone --encoder minilm`).
#   bash bench/converged_runs.sh [run ...]
# Runs are named as their result files: tagger-<release>, relation-mnre, <release>-index,
# <release>-text (releases mner2017 mner2015 gmner2 mnre); with none, every run, quickest first.
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

runs=("$@")
[ $# -gt 0 ] || runs=(tagger-mner2017 mner2017-index tagger-mner2015 mner2015-index tagger-gmner2
                      gmner2-index relation-mnre mner2017-text mner2015-text mnre-text)
for run in "${runs[@]}"; do
    case $run in
        tagger-*)      baseline tagger ${run#tagger-} $run ;;
        relation-mnre) baseline relation mnre $run ;;
        mner201?-index) genie mner ${run%-index} index $run ;;
        mner201?-text)  genie mner ${run%-text} text $run decode.constrained=false ;;
        gmner2-index)  genie gmner gmner2 index $run ;;
        mnre-text)     genie mre mnre text $run decode.constrained=false ;;
        *) echo "converged_runs.sh: unknown run '$run'" >&2; exit 2 ;;
    esac
done
