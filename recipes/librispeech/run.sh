#!/usr/bin/env bash
# LibriSpeech (OpenSLR 12): any training parts (default train-clean-100, 100 h, 251 speakers)
# and one test part (default test-clean, 5.4 h, 40 other speakers); 16 kHz read audiobooks.
# OpenSLR 11's lexicon (librispeech-lexicon.txt, stress marks dropped; words it lacks become
# <UNK>) and ARPA LM (default 3-gram.pruned.3e-7.arpa.gz, Kaldi's tgsmall).
# Run from this directory:  bash run.sh [--stage N] [--stop-stage M] [--device cpu|cuda|auto]
#   [--allow-pipes] [--decoder auto|reference|torch] [--gmm tri1|mono]
#   [--temperatures "1 2 5 10"] [--alphas "0.2 0.8"] [--shares 3] [--students "student ..."]
#   [--train-parts "train-clean-100 ..."] [--test-part test-clean|test-other|dev-clean|...]
#   [--lm 3-gram.pruned.3e-7.arpa.gz|3-gram.pruned.1e-7.arpa.gz|3-gram.arpa.gz]
#   [--corpus-dir DIR] [--lm-dir DIR] [--base-url URL] [--checksums FILE] [--conf-dir conf|...]
{ # parsed whole before it runs: editing this file mid-run cannot change the run
set -euo pipefail

. ../common/defaults.sh   # the shared options: --stage, --device, --conf-dir, --gmm, ...
stop_stage=12
train_parts=train-clean-100   # joined into data/train, e.g. "train-clean-100 train-clean-360"
test_part=test-clean          # data/test_clean
lm=3-gram.pruned.3e-7.arpa.gz # OpenSLR 11: Kaldi's tgsmall (tgmed: 3-gram.pruned.1e-7.arpa.gz)
corpus_dir=     # a local copy holding the parts (LibriSpeech/); empty: download to corpus/
lm_dir=         # a local copy of the OpenSLR 11 files; empty: download to corpus/lm
base_url=https://www.openslr.org/resources   # OpenSLR or a mirror (BASE/12/<part>.tar.gz)
checksums=      # sha256sum-format file pinning files OpenSLR publishes no sha256 for (res. 11)
. ../common/options.sh "$@"

corpus=librispeech
train=train
test=${test_part//-/_}

if run 0; then
  log "Stage 0: download $train_parts $test_part and OpenSLR 11's lexicon and $lm"
  local_py librispeech download --dest corpus --parts $train_parts "$test_part" \
    --base-url "$base_url" ${checksums:+--checksums "$checksums"} \
    ${corpus_dir:+--corpus-dir "$corpus_dir"} > corpus.path
  local_py librispeech download-lm --dest corpus/lm \
    --files librispeech-lexicon.txt "$lm" --base-url "$base_url" \
    ${checksums:+--checksums "$checksums"} ${lm_dir:+--lm-dir "$lm_dir"} > lm.path
fi
if run 1; then
  log "Stage 1: data dirs, librispeech-lexicon.txt, the $lm LM"
  local_py librispeech prepare --corpus-dir "$(cat corpus.path)" --data-dir data \
    --train $train_parts --test "$test_part" --lexicon "$(cat lm.path)/librispeech-lexicon.txt" \
    --arpa "$(cat lm.path)/$lm"
fi
. ../common/stages.sh
exit
}
