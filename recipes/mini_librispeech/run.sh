#!/usr/bin/env bash
# Mini LibriSpeech (OpenSLR 31): train-clean-5 (5 h, 1519 utterances, 28 speakers) trains,
# dev-clean-2 (2 h, 1089 utterances, 40 other speakers) is the test set; 16 kHz read audiobooks.
# CMUdict lexicon (words it lacks become <UNK>); a Kneser-Ney trigram on the training
# transcripts, or the ARPA LM given with --arpa (plain or .gz, e.g. OpenSLR 11's
# 3-gram.pruned.3e-7.arpa.gz as Kaldi's mini_librispeech uses).
# Run from this directory:  bash run.sh [--stage N] [--stop-stage M] [--device cpu|cuda|auto]
#   [--allow-pipes] [--decoder auto|reference|torch] [--gmm tri1|mono]
#   [--temperatures "1 2 5 10"] [--alphas "0.2 0.8"] [--shares 3] [--students "student ..."]
#   [--corpus-dir DIR] [--base-url URL] [--checksums FILE] [--lm-order N] [--arpa FILE]
#   [--conf-dir conf|conf_ci]
{ # parsed whole before it runs: editing this file mid-run cannot change the run
set -euo pipefail

. ../common/defaults.sh   # the shared options: --stage, --device, --conf-dir, --gmm, ...
stop_stage=12
corpus_dir=     # a local copy holding train-clean-5/ and dev-clean-2/; empty: download to corpus/
base_url=https://www.openslr.org/resources   # OpenSLR or a mirror (BASE/31/<part>.tar.gz)
checksums=      # sha256sum-format file pinning the archives (OpenSLR 31 publishes no sha256)
lm_order=3      # Kneser-Ney n-gram on the training transcripts ...
arpa=           # ... unless an ARPA LM is given here
. ../common/options.sh "$@"

corpus=mini_librispeech
train=train
test=dev_clean_2

if run 0; then
  log "Stage 0: download train-clean-5 and dev-clean-2 (or use --corpus-dir)"
  local_py librispeech download --dest corpus --parts train-clean-5 dev-clean-2 \
    --base-url "$base_url" ${checksums:+--checksums "$checksums"} \
    ${corpus_dir:+--corpus-dir "$corpus_dir"} > corpus.path
fi
if run 1; then
  log "Stage 1: data dirs, CMUdict lexicon, LM: ${arpa:-a $lm_order-gram on the training text}"
  local_py librispeech prepare --corpus-dir "$(cat corpus.path)" --data-dir data \
    --train train-clean-5 --test dev-clean-2 --lm-order "$lm_order" ${arpa:+--arpa "$arpa"}
fi
. ../common/stages.sh
exit
}
