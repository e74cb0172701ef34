# The stages every asr-kd recipe shares, from the lang dir to the results (stages 2-14).
# Sourced by recipes/<corpus>/run.sh after it has parsed its options, run stages 0-1 (corpus and
# data dirs, data/local/dict, data/local/lm.arpa) and set:
#   train, test       data dir names under data/
#   device            --device for every stage
#   temperatures      temperature sweep (stage 11), e.g. "1 2 5 10"
#   alphas            alpha sweep at conf/student.yaml's temperature (stage 11)
#   shares            percent of the training utterances for Table 5 (stage 12), e.g. "3"
#   allow_pipes       true: wav.scp entries may be shell pipes (`sph2pipe ... |`), stage 3
#   decoder           reference (kaldi-decoder's FasterDecoder, CPU) or torch (batched, --device)
#   students          student configs for stage 7 (default "student"): conf/S.yaml trains
#                     exp/S_hard and exp/S_kd, e.g. "student student_tdnn"
#   seeds             more seeds for stage 7's "student" pair (stage 14), e.g. "101 102":
#                     exp/seeds/hard_sN and kd_sN; the report gives kept per seed and its spread
#   gmm               the GMM whose alignments are the DNN targets and whose tree the decoding
#                     graph uses: tri1 (default; conf/tri1.yaml) or mono
#   corpus            the corpus name in the report
#   conf_dir          an overlay of conf/ (e.g. conf_ci, conf_mixed): a file there is merged over
#                     conf/'s key by key (mappings recursively; lists and scalars replace), so it
#                     holds only what differs; a file only there is used alone
#   sil_prob          optional silence between words in L (default 0.5; 0 where silence is a
#                     word of the transcripts, as TIMIT's sil)
# Their defaults are in recipes/common/defaults.sh.
# Stage 13 (specialists, paper section 5) needs conf/specialists.yaml; teacher_1 is the
# generalist.
# and the functions log, run (recipes/common/options.sh).

# conf NAME: the --config options for NAME: conf/NAME, then the overlay's NAME merged over it
# when the overlay has one (only the overlay's where conf/ has none). Used unquoted: $(conf NAME).
conf() {
  local opts=
  if [ -f "conf/$1" ] || [ ! -f "$conf_dir/$1" ]; then opts="--config conf/$1"; fi
  if [ "$conf_dir" != conf ] && [ -f "$conf_dir/$1" ]; then opts+=" --config $conf_dir/$1"; fi
  echo "$opts"
}

asr="python -m asr_kd"
dev="--device $device"
ali=exp/${gmm}_ali_$train

# decode_system NAME MODEL DECODE_DIR: decode the test set with one system; every system uses
# exp/graph and the targets' alignments, except a monophone GMM below a triphone one.
decode_system() {
  local cf graph=exp/graph ali_dir=exp/${gmm}_ali_$test
  cf=$(conf decode_dnn.yaml)
  case "$2" in *.mdl) cf=$(conf decode_gmm.yaml) ;; esac
  if [ "$1" = mono ] && [ "$gmm" != mono ]; then graph=exp/graph_mono ali_dir=exp/mono_ali_$test; fi
  $asr decode --system "$1" "$2" $graph data/$test "$3" --ali-dir $ali_dir \
    $cf --decoder "$decoder" $dev
}

# student NAME [--teacher MODEL] [--role ROLE] [--group G] [--set KEY=VALUE ...]: train one
# student on the ensemble (or on MODEL) and decode it; the role (sweep, share, seed, ...) and
# group go to its run.json, which the report reads.
student() {
  local dir=$1 teacher=exp/ensemble/final.pt; shift
  if [ "${1:-}" = --teacher ]; then teacher=$2; shift 2; fi
  $asr train-student data/$train $ali "$dir" $(conf student.yaml) \
    --teacher "$teacher" "$@" $dev
  decode_system "$(basename "$dir")" "$dir/final.pt" "$dir/decode_$test"
}

report() { $asr report exp --corpus "$corpus" --test-set "$test"; }

if run 2; then
  log "Stage 2: lang dir (lexicon, topology, L, G from the ARPA LM)"
  $asr make-lang data/local/dict data/lang --arpa data/local/lm.arpa --sil-prob "$sil_prob"
fi
if run 3; then
  log "Stage 3: fbank + CMVN"
  pipes=; if [ "$allow_pipes" = true ]; then pipes=--allow-pipes; fi
  for set in $train $test; do
    $asr compute-feats data/$set $(conf fbank.yaml) $pipes $dev
  done
fi
if run 4; then
  log "Stage 4: GMM-HMM: monophone, then ${gmm}"
  $asr train-mono data/$train data/lang exp/mono $(conf mono.yaml) $dev
  if [ "$gmm" = tri1 ]; then
    $asr align data/$train data/lang exp/mono exp/mono_ali_$train $(conf mono.yaml) $dev
    $asr train-tri data/$train data/lang exp/mono_ali_$train exp/tri1 \
      $(conf tri1.yaml) $dev
  fi
fi
if run 5; then
  log "Stage 5: forced alignment with $gmm (DNN targets; test alignments for frame accuracy)"
  for set in $train $test; do
    $asr align data/$set data/lang exp/$gmm exp/${gmm}_ali_$set $(conf $gmm.yaml) $dev
  done
  if [ "$gmm" != mono ]; then  # the monophone GMM's own frame accuracy
    $asr align data/$test data/lang exp/mono exp/mono_ali_$test $(conf mono.yaml) $dev
  fi
fi
if run 6; then
  log "Stage 6: teacher ensemble (exp/teacher_k, exp/ensemble)"
  $asr train-teachers data/$train $ali exp $(conf teachers.yaml) $dev
fi
if run 7; then
  log "Stage 7: students ($students): hard targets only, and distilled from the ensemble"
  for s in $students; do
    $asr train-student data/$train $ali exp/${s}_hard $(conf $s.yaml) \
      --set distill.alpha=0 $dev
    $asr train-student data/$train $ali exp/${s}_kd $(conf $s.yaml) \
      --teacher exp/ensemble/final.pt $dev
  done
fi
if run 8; then
  log "Stage 8: decoding graph HCLG (${gmm}'s tree; and the monophone one's)"
  $asr make-graph data/lang exp/$gmm exp/graph $(conf graph.yaml)
  if [ "$gmm" != mono ]; then
    $asr make-graph data/lang exp/mono exp/graph_mono $(conf graph.yaml)
  fi
fi
if run 9; then
  log "Stage 9: decode $test with every system"
  students_dirs=$(for s in $students; do echo exp/${s}_hard exp/${s}_kd; done)
  gmm_dirs=exp/mono; [ "$gmm" = mono ] || gmm_dirs="exp/mono exp/$gmm"
  for dir in $gmm_dirs exp/teacher_* exp/ensemble $students_dirs; do
    model=$dir/final.pt; [ -f "$model" ] || model=$dir/final.mdl
    decode_system "$(basename "$dir")" "$model" "$dir/decode_$test"
  done
fi
if run 10; then
  log "Stage 10: results (Table 1)"
  report
fi
if run 11; then
  log "Stage 11: temperature sweep (T = $temperatures) and alpha sweep (alpha = $alphas)"
  for t in $temperatures; do student exp/sweep/T$t --role sweep --set distill.temperature="$t"; done
  for a in $alphas; do student exp/sweep/alpha$a --role sweep --set distill.alpha="$a"; done
  report
fi
if run 12; then
  log "Stage 12: Table 5: students on $shares% of the training utterances, hard vs soft"
  for p in $shares; do
    f=$(python -c "print($p / 100)")
    student exp/share/hard_p$p --role share --set utt_fraction="$f" --set distill.alpha=0
    student exp/share/kd_p$p --role share --set utt_fraction="$f"
  done
  report
fi
if run 13; then
  log "Stage 13: specialists over confusable pdfs beside teacher_1, and a student distilled from them"
  $asr train-specialists data/$train $ali exp/teacher_1/final.pt exp/specialists \
    $(conf specialists.yaml) $dev
  decode_system specialists exp/specialists/final.pt exp/specialists/decode_$test
  $asr score-specialists exp/specialists/final.pt data/$test exp/${gmm}_ali_$test \
    exp/specialists/decode_$test $dev
  student exp/student_spec --teacher exp/specialists/final.pt --group student_spec \
    --set distill.source=topk
  report
fi
if run 14; then
  log "Stage 14: kept over student seeds ($seeds, beside stage 7's pair)"
  for s in $seeds; do
    student exp/seeds/hard_s$s --role seed --set seed="$s" --set distill.alpha=0
    student exp/seeds/kd_s$s --role seed --set seed="$s"
  done
  report
fi
