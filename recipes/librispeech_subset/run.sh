#!/usr/bin/env bash
# librispeech_subset: the hour of LibriSpeech train-clean-5 in ../shared/corpora (24 speakers,
# 16 kHz read audiobooks, FLAC); 20 speakers train, 2 dev, 2 test (split by speaker).
# CMUdict lexicon; a Kneser-Ney trigram on the training transcripts plus the training speakers'
# other train-clean-5 transcripts (--lm-text train+other) or the training transcripts alone.
# Run from this directory:  bash run.sh [--stage N] [--stop-stage M] [--device cpu|cuda|auto]
#   [--allow-pipes] [--decoder auto|reference|torch] [--gmm tri1|mono]
#   [--temperatures "1 2 5 10"] [--alphas "0.2 0.8"] [--shares 3] [--students "student ..."]
#   [--corpus-dir DIR] [--lm-order N] [--lm-text train+other|train] [--conf-dir conf|...]
{ # parsed whole before it runs: editing this file mid-run cannot change the run
set -euo pipefail

. ../common/defaults.sh   # the shared options: --stage, --device, --conf-dir, --gmm, ...
stop_stage=12
transfer_sets=transfer_an4  # all of AN4's audio, untranscribed: stage 7's student_kdt
corpus_dir=     # a local copy (train-clean-5/, SPEAKERS.TXT, lm_text/); empty: the shared one
lm_order=3
lm_text=train+other
. ../common/options.sh "$@"

corpus=librispeech_subset
train=train
test=test

if run 0; then
  log "Stage 0: find the corpus"
  local_py librispeech download --dest corpus \
    ${corpus_dir:+--corpus-dir "$corpus_dir"} > corpus.path
fi
if run 1; then
  log "Stage 1: data dirs (split by speaker), CMUdict lexicon, a $lm_order-gram LM on $lm_text"
  local_py librispeech prepare --corpus-dir "$(cat corpus.path)" --data-dir data \
    --split-by-speaker --lm-order "$lm_order" --lm-text "$lm_text"
  if [ -n "$transfer_sets" ]; then local_py librispeech transfer --data-dir data; fi
fi
. ../common/stages.sh
exit
}
