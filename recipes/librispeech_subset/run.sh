#!/usr/bin/env bash
# librispeech_subset: the hour of LibriSpeech train-clean-5 in ../shared/corpora (24 speakers,
# 16 kHz read audiobooks, FLAC); 20 speakers train, 2 dev, 2 test (split by speaker). Two test
# sets, test and dev_clean: 14 dev-clean speakers, 817 utterances, MP3, from
# ../shared/corpora/librispeech_dev_clean. Every word is lower case (local/librispeech.py).
# LM (--lm): en_us (default), CMU Sphinx's general English trigram, with its dictionary
# cmudict-en-us.dict restricted to the LM's and the training transcripts' words; or a
# Kneser-Ney n-gram (--lm-order) with the CMUdict lexicon, on the training transcripts plus
# the training speakers' other train-clean-5 transcripts (train+other) or on the training
# transcripts alone (train). --arpa FILE replaces --lm's LM and keeps its lexicon rule.
# Run from this directory:  bash run.sh [--stage N] [--stop-stage M] [--device cpu|cuda|auto]
#   [--allow-pipes] [--decoder auto|reference|torch] [--gmm tri1|mono]
#   [--temperatures "1 2 5 10"] [--alphas "0.2 0.8"] [--shares 3] [--students "student ..."]
#   [--corpus-dir DIR] [--lm en_us|train+other|train] [--lm-order N] [--arpa FILE]
#   [--test-sets "test dev_clean"] [--conf-dir conf|...]
{ # parsed whole before it runs: editing this file mid-run cannot change the run
set -euo pipefail

. ../common/defaults.sh   # the shared options: --stage, --device, --conf-dir, --gmm, ...
stop_stage=12
transfer_sets=transfer_an4  # all of AN4's audio, untranscribed: stage 7's student_kdt
corpus_dir=     # a local copy (train-clean-5/, SPEAKERS.TXT, lm_text/); empty: the shared one
lm=en_us        # en_us, train+other or train (above)
lm_order=3      # the order of the train+other or train LM
arpa=           # an ARPA LM (plain or .gz) in place of --lm's, e.g. a small one for CI
test_sets="test dev_clean"  # both decoded and reported; the first is $test
dev_set=dev     # the two dev speakers: stage 9 chooses each system's LM weight and penalty there
lm_weights=8,10,12,14,16  # every second of Kaldi's 7:17: each point is a search of the 52M-arc graph
decode_jobs=1   # one system at a time: with its penalty copies of the graph one decode peaks near 10 GB
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
  log "Stage 1: data dirs (split by speaker, and dev_clean), the $lm LM${arpa:+ as $arpa}"
  local_py librispeech prepare --corpus-dir "$(cat corpus.path)" --data-dir data \
    --split-by-speaker --lm "$lm" --lm-order "$lm_order" ${arpa:+--arpa "$arpa"}
  if [ -n "$transfer_sets" ]; then local_py librispeech transfer --data-dir data; fi
fi
. ../common/stages.sh
exit
}
