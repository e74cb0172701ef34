#!/usr/bin/env bash
# FSDD (Free Spoken Digit Dataset): one spoken digit per utterance, 4 speakers, 8 kHz.
# Teacher ensemble, distilled student, and the paper's Tables 1 and 5 on real speech.
# Stage 13: specialists over confusable pdfs beside teacher_1 (paper section 5).
# Stage 14: every student again with other seeds: kept with its spread.
# Two test sets (--split both): other takes of the three training voices (test), and all 500
# recordings of a fourth voice (test_unseen). S_kdt students are distilled with AN4's audio,
# resampled to 8 kHz, as a transfer set.
# Run from this directory:  bash run.sh [--stage N] [--stop-stage M] [--device cpu|cuda|auto]
#   [--allow-pipes] [--decoder auto|reference|torch] [--gmm tri1|mono]
#   [--temperatures "1 2 5 10"] [--alphas "0.2 0.8"] [--shares 3] [--students "student ..."]
#   [--seeds "101 102"]
#   [--transfer-sets transfer_an4]
#   [--corpus-dir DIR] [--split both|takes|speaker] [--conf-dir conf|conf_ci|conf_mixed]
{ # parsed whole before it runs: editing this file mid-run cannot change the run
set -euo pipefail

. ../common/defaults.sh   # the shared options: --stage, --device, --conf-dir, --gmm, ...
stop_stage=14
transfer_sets=transfer_an4
corpus_dir=     # a local copy (recordings/); empty: ../shared/corpora/fsdd, else download
split=both      # both: test = takes 0-4 of three voices, test_unseen = theo, the fourth;
                # takes: takes 0-4 of every digit and speaker are the test set; speaker: theo
. ../common/options.sh "$@"

corpus=fsdd
train=train
test=test
if [ -z "$test_sets" ] && [ "$split" = both ]; then test_sets="test test_unseen"; fi

if run 0; then
  log "Stage 0: find or download the corpus"
  local_py fsdd download --dest corpus ${corpus_dir:+--corpus-dir "$corpus_dir"} \
    > corpus.path
fi
if run 1; then
  log "Stage 1: data dirs ($split split), CMUdict lexicon, one-digit grammar; transfer sets"
  local_py fsdd prepare --corpus-dir "$(cat corpus.path)" --data-dir data \
    --split "$split"
  if [ -n "$transfer_sets" ]; then local_py fsdd transfer --data-dir data; fi
fi
. ../common/stages.sh
exit
}
