#!/usr/bin/env bash
# yesno: Kaldi's first recipe (egs/yesno/s5) on real audio, with asr-kd's stages.
# Run from this directory:  bash run.sh [--stage N] [--stop-stage M] [--device cpu|cuda|auto]
#   [--allow-pipes] [--decoder auto|reference|torch] [--corpus-dir DIR]
#   (every option of ../common/defaults.sh is one of this script's)
# Kaldi's monophone system scores %WER 0.00 [ 0 / 232 ] on test_yesno; ours, every system, make
# one insertion (0.43%), which docs/yesno.md studies.
{ # parsed whole before it runs: editing this file mid-run cannot change the run
set -euo pipefail

. ../common/defaults.sh   # every other option: --stage, --device, --decoder, ...
stop_stage=10   # stages 11-14 (sweeps, Table 5, specialists, seeds) are for the larger corpora
corpus_dir=     # a local copy of waves_yesno; empty: ../shared/corpora/yesno, else download
gmm=mono        # whole-word "phones" YES and NO: no context to tie, as in Kaldi's recipe
shares=10       # stage 12, if run: 3% of 31 utterances would be one
. ../common/options.sh "$@"

corpus=yesno
train=train_yesno
test=test_yesno

if run 0; then
  log "Stage 0: find or download the corpus"
  local_py yesno download --dest corpus ${corpus_dir:+--corpus-dir "$corpus_dir"} > corpus.path
fi
if run 1; then
  log "Stage 1: data dirs train_yesno (31 files 0_*) and test_yesno (29 files 1_*)"
  local_py yesno prepare --corpus-dir "$(cat corpus.path)" --data-dir data
fi
. ../common/stages.sh
exit
}
