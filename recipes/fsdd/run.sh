#!/usr/bin/env bash
# FSDD (Free Spoken Digit Dataset): one spoken digit per utterance, 4 speakers, 8 kHz.
# Teacher ensemble, distilled student, and the paper's Tables 1 and 5 on real speech.
# Stage 13: specialists over confusable pdfs beside teacher_1 (paper section 5).
# Run from this directory:  bash run.sh [--stage N] [--stop-stage M] [--device cpu|cuda|auto]
#   [--allow-pipes] [--decoder reference|torch] [--gmm tri1|mono]
#   [--temperatures "1 2 5 10"] [--alphas "0.2 0.8"] [--shares 3] [--students "student ..."]
#   [--corpus-dir DIR] [--split takes|speaker] [--conf-dir conf|conf_paper]
set -euo pipefail

stage=0
stop_stage=13
device=auto
corpus_dir=     # a local copy (recordings/); empty: ../shared/corpora/fsdd, else download
split=takes     # takes: takes 0-4 of every digit and speaker are the test set; speaker: theo
conf_dir=conf
temperatures="1 2 5 10"   # stage 11: temperature sweep at conf/student.yaml's alpha
alphas="0.2 0.8"          # stage 11: alpha sweep at conf/student.yaml's temperature
shares=3                  # stage 12: percent of the training utterances for Table 5
students=student          # stage 7: conf/S.yaml -> exp/S_hard, exp/S_kd for each S
allow_pipes=false         # stage 3: wav.scp entries may be commands (`cmd |`)
decoder=reference         # stages 9, 11, 12: reference (kaldi-decoder, CPU) or torch (--device)
gmm=tri1                  # stages 4-5: the DNN targets' GMM, tri1 (tied triphones) or mono
. ../common/options.sh "$@"

corpus=fsdd
train=train
test=test

if run 0; then
  log "Stage 0: find or download the corpus"
  python ../../local/fsdd.py download --dest corpus ${corpus_dir:+--corpus-dir "$corpus_dir"} \
    > corpus.path
fi
if run 1; then
  log "Stage 1: data dirs ($split split), CMUdict lexicon, one-digit grammar"
  python ../../local/fsdd.py prepare --corpus-dir "$(cat corpus.path)" --data-dir data \
    --split "$split"
fi
. ../common/stages.sh
