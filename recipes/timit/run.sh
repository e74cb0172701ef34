#!/usr/bin/env bash
# TIMIT (LDC93S1): phone recognition on your licensed copy; 16 kHz read speech, 630 speakers.
# Kaldi's egs/timit/s5 setup: the SA sentences dropped, 3696 training utterances (462
# speakers), the 400-utterance dev set (50 speakers, data/dev) and the 192-utterance core test
# set (24 speakers, data/test); 48 phones, each its own word, a phone bigram LM, and scoring on
# the standard 39 phones (data/lang/score_map.txt folds references and hypotheses): every %WER
# line and WER column of this recipe is a phone error rate (PER) on 39 phones.
# Run from this directory:  bash run.sh --corpus-dir /path/to/TIMIT   (holding TRAIN/, TEST/)
#                      or:  bash run.sh --url URL --sha256 HEX   (a tar or zip of your copy)
#   [--stage N] [--stop-stage M] [--device cpu|cuda|auto] [--decoder auto|reference|torch]
#   [--gmm tri1|mono] [--lm-order 2] [--temperatures "1 2 5 10"] [--alphas "0.2 0.8"]
#   [--shares 3] [--students "student ..."] [--conf-dir conf|conf_ci]
# Kaldi's timit s5 RESULTS (core test, best LM weight): monophone GMM 32.7% PER, tri1 25.6%
# (dev: 31.7%, 25.1%).
{ # parsed whole before it runs: editing this file mid-run cannot change the run
set -euo pipefail

. ../common/defaults.sh   # the shared options: --stage, --device, --conf-dir, --gmm, ...
stop_stage=12
corpus_dir=     # your copy: the directory holding TRAIN/ and TEST/, or one or two levels above
url=            # or an archive (tar or zip) of it on your own mirror, fetched to corpus/TIMIT
sha256=         # the archive's sha256 (without it the download is logged with its sha256)
lm_order=2      # phone n-gram (Kneser-Ney) on the training transcripts; Kaldi's is a bigram
sil_prob=0.0    # stage 2: no optional silence in L, sil is a word (Kaldi's --sil-prob 0.0)
. ../common/options.sh "$@"

corpus=timit
train=train
test=test

if run 0; then
  log "Stage 0: find your TIMIT copy (--corpus-dir) or fetch it from your mirror (--url)"
  root=$(local_py timit download --dest corpus \
    ${corpus_dir:+--corpus-dir "$corpus_dir"} ${url:+--url "$url"} ${sha256:+--sha256 "$sha256"})
  echo "$root" > corpus.path  # only once the copy is complete
fi
if run 1; then
  log "Stage 1: data dirs (train, dev, core test), 48 phones as words, a $lm_order-gram phone" \
    "LM, the 48 -> 39 score map"
  local_py timit prepare --corpus-dir "$(cat corpus.path)" --data-dir data \
    --lm-order "$lm_order"
fi
. ../common/stages.sh
exit
}
