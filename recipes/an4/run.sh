#!/usr/bin/env bash
# CMU AN4: continuous read speech (letters, digits, numbers, control words), 16 kHz;
# 948 train utterances (74 speakers) and 130 test (10 other speakers).
# Teacher ensemble, distilled student, and the paper's Tables 1 and 5 on real speech.
# Stage 13: specialists over confusable pdfs beside teacher_1 (paper section 5).
# Stage 14: every student again with other seeds: kept with its spread.
# The DNNs train on data/train_sp (the original and copies at speeds 0.9 and 1.1, aligned with
# tri1); stage 7's S_kdt students are distilled with three transfer sets of untranscribed
# audio beside it: LibriSpeech (an hour of train-clean-5, 14 speakers of dev-clean) and the
# training audio at six speeds no DNN trained on (0.8-1.2), labelled by the teachers alone.
# Run from this directory:  bash run.sh [--stage N] [--stop-stage M] [--device cpu|cuda|auto]
#   [--allow-pipes] [--decoder auto|reference|torch] [--gmm tri1|tri2|tri3|mono]
#   [--temperatures "1 2 5 10"] [--alphas "0.2 0.8"] [--shares 3] [--students "student ..."]
#   [--seeds "101 102"] [--speed-factors "0.9 1.1"] [--transfer-sets "transfer_... ..."]
#   [--transfer-speed-factors "0.8 ... 1.2"]
#   [--corpus-dir DIR] [--download] [--url URL] [--sha256 HEX] [--lm-order N] [--dev-speakers N]
#   [--conf-dir conf|conf_ci]
# Kaldi's AN4 recipe scores 10.61% WER with its monophone GMM and 5.95% with its best
# (speaker-adapted triphone) GMM on the 773-word test set.
{ # parsed whole before it runs: editing this file mid-run cannot change the run
set -euo pipefail

. ../common/defaults.sh   # the shared options: --stage, --device, --conf-dir, --gmm, ...
stop_stage=14
students="student student_big"  # the small student, and one of a teacher member's shape
speed_factors="0.9 1.1"
transfer_sets="transfer_librispeech_subset transfer_librispeech_dev_clean"
transfer_speed_factors="0.8 0.85 0.95 1.05 1.15 1.2"  # + data/transfer_train_sp (stage 3)
transfer_weights="0.5 0.9"  # stage 11's sweep, around conf/student.yaml's 0.75
corpus_dir=     # a local copy (etc/ and wav/); empty: ../shared/corpora/an4, else download
download=false  # true (--download): fetch CMU's archive into corpus/an4 even where the shared
                # copy is present (once: a complete corpus/an4 is used as it is)
url=            # the archive to fetch; empty: CMU's an4_sphere.tar.gz (local/an4.py's AN4_URL)
sha256=         # pins the archive (CMU publishes no sha256; stage 0 logs the one it fetched)
lm_order=3      # Kneser-Ney n-gram on the training transcripts
dev_speakers=0  # e.g. 6: data/dev, that many whole training speakers out of train and the LM;
                # stage 9 picks each system's LM weight and penalty on it (common/stages.sh)
. ../common/options.sh "$@"
if [ "$dev_speakers" -gt 0 ]; then dev_set=dev; fi

corpus=an4
train=train
test=test

if run 0; then
  log "Stage 0: find or download the corpus"
  shared_opt=; if $download; then shared_opt=--no-shared; fi
  local_py an4 download --dest corpus ${corpus_dir:+--corpus-dir "$corpus_dir"} \
    $shared_opt ${url:+--url "$url"} ${sha256:+--sha256 "$sha256"} > corpus.path
fi
if run 1; then
  log "Stage 1: data dirs, an4.dic lexicon, a $lm_order-gram LM on the training transcripts;" \
    "transfer sets"
  local_py an4 prepare --corpus-dir "$(cat corpus.path)" --data-dir data \
    --lm-order "$lm_order" --dev-speakers "$dev_speakers"
  local_py an4 transfer --data-dir data
fi
. ../common/stages.sh
exit
}
