#!/usr/bin/env bash
# yesno: Kaldi's first recipe (egs/yesno/s5) on real audio, with asr-kd's stages.
# Run from this directory:  bash run.sh [--stage N] [--stop-stage M] [--device cpu|cuda|auto]
# Kaldi's monophone system scores %WER 0.00 [ 0 / 232 ] on test_yesno; so should every system here.
set -euo pipefail

stage=0
stop_stage=10
device=auto
corpus_dir=   # a local copy of waves_yesno; empty: ../shared/corpora/yesno, else download
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --corpus-dir) corpus_dir=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 1 ;;
  esac
done

log() { echo "$(date '+%H:%M:%S') run.sh: $*"; }
run() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
asr="python -m asr_kd"
dev="--device $device"

if run 0; then
  log "Stage 0: find or download the corpus"
  corpus=$(python ../../local/yesno.py download --dest corpus ${corpus_dir:+--corpus-dir "$corpus_dir"})
  echo "$corpus" > corpus.path
fi
if run 1; then
  log "Stage 1: data dirs train_yesno (31 files 0_*) and test_yesno (29 files 1_*)"
  python ../../local/yesno.py prepare --corpus-dir "$(cat corpus.path)" --data-dir data
fi
if run 2; then
  log "Stage 2: lang dir (lexicon, topology, L, G from a unigram ARPA LM)"
  $asr make-lang data/local/dict data/lang --arpa data/local/lm.arpa
fi
if run 3; then
  log "Stage 3: fbank + CMVN"
  for set in train_yesno test_yesno; do
    $asr compute-feats data/$set --config conf/fbank.yaml $dev
  done
fi
if run 4; then
  log "Stage 4: monophone GMM-HMM"
  $asr train-mono data/train_yesno data/lang exp/mono --config conf/mono.yaml $dev
fi
if run 5; then
  log "Stage 5: forced alignment (DNN targets; test alignments for frame accuracy)"
  for set in train_yesno test_yesno; do
    $asr align data/$set data/lang exp/mono exp/mono_ali_$set --config conf/mono.yaml $dev
  done
fi
if run 6; then
  log "Stage 6: DNN acoustic model on the monophone alignments"
  $asr train-dnn data/train_yesno exp/mono_ali_train_yesno exp/dnn --config conf/dnn.yaml $dev
fi
# Stage 7 (teacher ensemble and distillation) comes with the ensemble recipes.
if run 8; then
  log "Stage 8: decoding graph HCLG"
  $asr make-graph data/lang exp/mono exp/graph --config conf/graph.yaml
fi
if run 9; then
  log "Stage 9: decode test_yesno with every system"
  $asr decode --system mono exp/mono/final.mdl exp/graph data/test_yesno \
    exp/mono/decode_test_yesno --ali-dir exp/mono_ali_test_yesno --config conf/decode_gmm.yaml $dev
  $asr decode --system dnn exp/dnn/final.pt exp/graph data/test_yesno \
    exp/dnn/decode_test_yesno --ali-dir exp/mono_ali_test_yesno --config conf/decode_dnn.yaml $dev
fi
if run 10; then
  log "Stage 10: results"
  $asr report exp --corpus yesno --test-set test_yesno
fi
