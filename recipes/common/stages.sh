# The stages every asr-kd recipe shares, from the lang dir to the results (stages 2-14).
# Sourced by recipes/<corpus>/run.sh after it has parsed its options, run stages 0-1 (corpus and
# data dirs, data/local/dict, data/local/lm.arpa) and set:
#   train, test       data dir names under data/: the GMMs' training set and the first
#                     (primary) test set
#   test_sets         every test set, the first being $test (default: $test alone); every
#                     system is decoded and reported on each
#   speed_factors     speed perturbation of $train (stage 3), e.g. "0.9 1.1": data/${train}_sp
#                     holds the original and the perturbed copies, is aligned with the GMM
#                     (stage 5) and is the training set of every DNN, teachers and students
#   transfer_sets     data dirs under data/ of untranscribed audio (stage 1 makes them), e.g.
#                     "transfer_a transfer_b": stage 7 adds exp/S_kdt, distilled with them too
#   transfer_speed_factors  e.g. "0.8 1.2": stage 3 writes the copies of $train at these
#                     speeds alone (no originals) as data/transfer_${train}_sp, a transfer set
#                     joining $transfer_sets: in-domain audio the teachers label but never
#                     trained on at these speeds; copies of validation utterances are left out
#   transfer_vtln_factors  e.g. "0.9 1.1": stage 3 writes copies of the DNNs' training set
#                     ($dnn_train) featurised at these VTLN warps alone (asr-kd perturb-vtln)
#                     as data/transfer_${train}_vtln, one more transfer set: the same speech as
#                     if from other vocal tracts
#   device            --device for every stage
#   temperatures      temperature sweep (stage 11), e.g. "1 2 5 10"
#   alphas            alpha sweep at conf/student.yaml's temperature (stage 11)
#   transfer_weights  transfer-weight sweep of student_kdt (stage 11); the report marks the
#                     setting of each variant best on the validation split
#   shares            percent of the training utterances for Table 5 (stage 12), e.g. "3"
#   allow_pipes       true: wav.scp entries may be shell pipes (`sph2pipe ... |`), stage 3
#   decoder           reference (kaldi-decoder's FasterDecoder, CPU) or torch (batched, --device)
#   students          student configs for stage 7 (default "student"): conf/S.yaml trains
#                     exp/S_hard, exp/S_kd (and exp/S_kdt with transfer sets), e.g.
#                     "student student_big"
#   seeds             more seeds of every student of stage 7 (stage 14), e.g. "101 102":
#                     exp/seeds/S_hard_sN, S_kd_sN, S_kdt_sN; the report gives kept per seed,
#                     of the seed means, and a paired bootstrap of each distilled WER
#   gmm               the GMM whose alignments are the DNN targets and whose tree the decoding
#                     graph uses: tri1 (default; conf/tri1.yaml), tri2 (LDA+MLLT on tri1's
#                     alignments, conf/tri2.yaml), tri3 (SAT with fMLLR on tri2's alignments,
#                     conf/tri3.yaml; its alignments and decodes estimate each speaker's
#                     transform, as Kaldi's align_fmllr.sh and decode_fmllr.sh) or mono; every
#                     GMM below it on that ladder is trained on the way and decoded beside it
#                     with its own graph (exp/graph_<name>) and test alignments
#   corpus            the corpus name in the report
#   conf_dir          an overlay of conf/ (e.g. conf_ci, conf_mixed): a file there is merged over
#                     conf/'s key by key (mappings recursively; lists and scalars replace), so it
#                     holds only what differs; a file only there is used alone
#   sil_prob          optional silence between words in L (default 0.5; 0 where silence is a
#                     word of the transcripts, as TIMIT's sil)
#   decode_jobs       systems stage 9 decodes at once (default 1), e.g. 2 on two cores: each
#                     holds its own copy of the graph (and one per word insertion penalty)
#   dev_set           a data dir of held-out training speakers (stage 1 makes it), e.g. dev:
#                     stage 9 decodes it with every system at each LM weight of $lm_weights and
#                     penalty of $word_ins_penalties, and decodes the test sets at the best
#                     (RUN_DIR/decode_<dev_set>/wer_<W>_<P>; the fixed weight's WER is kept)
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
test_sets=${test_sets:-$test}
dnn_train=$train  # the DNNs' training set: $train, or its speed-perturbed copy
if [ -n "$speed_factors" ]; then dnn_train=${train}_sp; fi
ali=exp/${gmm}_ali_$dnn_train
case $gmm in  # the GMMs below $gmm on the ladder mono < tri1 < tri2 < tri3
  mono) gmm_below= ;;
  tri1) gmm_below=mono ;;
  tri2) gmm_below="mono tri1" ;;
  tri3) gmm_below="mono tri1 tri2" ;;
  *) echo "unknown --gmm $gmm (mono, tri1, tri2 or tri3)" >&2; exit 1 ;;
esac
if [ -n "$transfer_speed_factors" ]; then transfer_sets+=" transfer_${train}_sp"; fi
if [ -n "$transfer_vtln_factors" ]; then transfer_sets+=" transfer_${train}_vtln"; fi
transfer=  # the transfer sets as one --set value for train-student
if [ -n "$transfer_sets" ]; then
  transfer="distill.transfer=[$(printf 'data/%s,' $transfer_sets)]"
  transfer=${transfer/,]/]}
fi

# decode_system NAME MODEL RUN_DIR: decode every test set with one system into
# RUN_DIR/decode_<set>; every system uses exp/graph and the targets' alignments, except a GMM
# below $gmm, which has its own. A tri3 model decodes in two passes (asr-kd decode does them).
# With a dev set, its decode searches the LM weights and penalties, and the test sets are
# decoded at its choice.
decode_system() {
  local cf graph=exp/graph ali_gmm=$gmm t lm=()
  cf=$(conf decode_dnn.yaml)
  case "$2" in *.mdl) cf=$(conf decode_gmm.yaml) ;; esac
  case " $gmm_below " in *" $1 "*) graph=exp/graph_$1 ali_gmm=$1 ;; esac
  if [ -n "$dev_set" ]; then
    $asr decode --system "$1" "$2" $graph data/$dev_set "$3/decode_$dev_set" $cf \
      --lm-weights "$lm_weights" --word-ins-penalties $word_ins_penalties \
      --decoder "$decoder" $dev
    lm=(--lm-weight-from "$3/decode_$dev_set")
  fi
  for t in $test_sets; do
    $asr decode --system "$1" "$2" $graph data/$t "$3/decode_$t" --ali-dir exp/${ali_gmm}_ali_$t \
      $cf "${lm[@]}" --decoder "$decoder" $dev
  done
}

# train_student DIR [--variant S V] [--teacher MODEL] [--role ROLE] [--group G] [--set K=V ...]:
# train one student on the ensemble (or on MODEL): conf/student.yaml, or variant V (hard, kd,
# kdt) of conf/S.yaml in group S; the role (sweep, share, seed, ...) and group go to its
# run.json, which the report reads.
train_student() {
  local dir=$1 s=student teacher=exp/ensemble/final.pt variant=(); shift
  if [ "${1:-}" = --variant ]; then
    s=$2 variant=(--group "$2")
    case $3 in
      hard) variant+=(--set distill.alpha=0) ;;
      kdt) variant+=(--set "$transfer") ;;
    esac
    shift 3
  fi
  if [ "${1:-}" = --teacher ]; then teacher=$2; shift 2; fi
  $asr train-student data/$dnn_train $ali "$dir" $(conf $s.yaml) \
    --teacher "$teacher" "${variant[@]}" "$@" $dev
}
# student DIR ARGS...: train_student, then decode it (stages 11-14, after the graph).
student() { train_student "$@"; decode_system "$(basename "$1")" "$1/final.pt" "$1"; }

# variants: exp/S_hard, exp/S_kd and, with transfer sets, exp/S_kdt for each student S.
variants() { echo "hard kd${transfer:+ kdt}"; }

report() {
  $asr report exp --corpus "$corpus" $(for t in $test_sets; do echo "--test-set $t"; done)
}

if run 2; then
  log "Stage 2: lang dir (lexicon, topology, L, G from the ARPA LM)"
  $asr make-lang data/local/dict data/lang --arpa data/local/lm.arpa --sil-prob "$sil_prob"
fi
if run 3; then
  log "Stage 3: fbank + CMVN${speed_factors:+, with copies of $train at speeds $speed_factors}"
  pipes=; if [ "$allow_pipes" = true ]; then pipes=--allow-pipes; fi
  if [ "$dnn_train" != "$train" ]; then
    $asr perturb-speed data/$train data/$dnn_train --factors $speed_factors
  fi
  if [ -n "$transfer_speed_factors" ]; then  # featurised by train-student, as every transfer set
    $asr perturb-speed data/$train data/transfer_${train}_sp --factors $transfer_speed_factors \
      --copies-only
  fi
  if [ -n "$transfer_vtln_factors" ]; then
    $asr perturb-vtln data/$dnn_train data/transfer_${train}_vtln \
      --factors $transfer_vtln_factors --copies-only
  fi
  for set in $(echo $train $dnn_train $dev_set $test_sets | tr ' ' '\n' | awk '!seen[$0]++'); do
    $asr compute-feats data/$set $(conf fbank.yaml) $pipes $dev
  done
fi
if run 4; then
  log "Stage 4: GMM-HMM: monophone, then ${gmm}"
  $asr train-mono data/$train data/lang exp/mono $(conf mono.yaml) $dev
  if [ "$gmm" != mono ]; then
    $asr align data/$train data/lang exp/mono exp/mono_ali_$train $(conf mono.yaml) $dev
    $asr train-tri data/$train data/lang exp/mono_ali_$train exp/tri1 \
      $(conf tri1.yaml) $dev
  fi
  if [ "$gmm" = tri2 ] || [ "$gmm" = tri3 ]; then
    $asr align data/$train data/lang exp/tri1 exp/tri1_ali_$train $(conf tri1.yaml) $dev
    $asr train-lda-mllt data/$train data/lang exp/tri1_ali_$train exp/tri2 \
      $(conf tri2.yaml) $dev
  fi
  if [ "$gmm" = tri3 ]; then
    $asr align data/$train data/lang exp/tri2 exp/tri2_ali_$train $(conf tri2.yaml) $dev
    $asr train-sat data/$train data/lang exp/tri2_ali_$train exp/tri3 $(conf tri3.yaml) $dev
  fi
fi
if run 5; then
  log "Stage 5: forced alignment with $gmm (DNN targets; test alignments for frame accuracy)"
  # tri3 estimates each speaker's fMLLR transform as it aligns (align_fmllr.sh)
  for set in $dnn_train $test_sets; do
    $asr align data/$set data/lang exp/$gmm exp/${gmm}_ali_$set $(conf $gmm.yaml) $dev
  done
  for g in $gmm_below; do  # each lower GMM's own frame accuracy
    for set in $test_sets; do
      $asr align data/$set data/lang exp/$g exp/${g}_ali_$set $(conf $g.yaml) $dev
    done
  done
fi
if run 6; then
  log "Stage 6: teacher ensemble (exp/teacher_k, exp/ensemble)"
  $asr train-teachers data/$dnn_train $ali exp $(conf teachers.yaml) $dev
fi
if run 7; then
  log "Stage 7: students ($students): hard targets only, distilled from the ensemble" \
    "${transfer:+, and distilled with the transfer sets ($transfer_sets)}"
  for s in $students; do
    for v in $(variants); do train_student exp/${s}_$v --variant "$s" "$v"; done
  done
fi
if run 8; then
  log "Stage 8: decoding graph HCLG of ${gmm}'s tree (exp/graph)" \
    "${gmm_below:+and of each GMM below it (exp/graph_<name>)}"
  $asr make-graph data/lang exp/$gmm exp/graph $(conf graph.yaml)
  for g in $gmm_below; do
    $asr make-graph data/lang exp/$g exp/graph_$g $(conf graph.yaml)
  done
fi
if run 9; then
  log "Stage 9: decode $test_sets with every system"
  students_dirs=$(for s in $students; do for v in $(variants); do echo exp/${s}_$v; done; done)
  gmm_dirs=$(for g in $gmm_below $gmm; do echo exp/$g; done)
  pids=()  # up to $decode_jobs systems at once; a failed one stops the stage when waited for
  for dir in $gmm_dirs exp/teacher_* exp/ensemble $students_dirs; do
    model=$dir/final.pt; [ -f "$model" ] || model=$dir/final.mdl
    decode_system "$(basename "$dir")" "$model" "$dir" & pids+=($!)
    if [ ${#pids[@]} -ge "$decode_jobs" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
fi
if run 10; then
  log "Stage 10: results (Table 1)"
  report
fi
if run 11; then
  log "Stage 11: temperature sweep (T = $temperatures), alpha sweep (alpha = $alphas)," \
    "${transfer:+transfer-weight sweep ($transfer_weights),} student_kdt on part of the" \
    "transfer sets"
  for t in $temperatures; do student exp/sweep/T$t --role sweep --set distill.temperature="$t"; done
  for a in $alphas; do student exp/sweep/alpha$a --role sweep --set distill.alpha="$a"; done
  if [ -n "$transfer" ]; then
    for w in $transfer_weights; do
      student exp/sweep/kdt_w$w --variant student kdt --role sweep \
        --set distill.transfer_weight="$w"
    done
  fi
  # kept against the transfer sets' size: student_kd (none) and student_kdt (all) from stage 7,
  # and here the first k of the sets for k = 1 .. (number of sets - 1).
  set -- $transfer_sets
  for ((k = 1; k < $#; k++)); do
    part=$(printf 'data/%s,' "${@:1:k}")
    student exp/transfer/student_kdt_$k --variant student kdt --role transfer \
      --set "distill.transfer=[${part%,}]"
  done
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
  $asr train-specialists data/$dnn_train $ali exp/teacher_1/final.pt exp/specialists \
    $(conf specialists.yaml) $dev
  decode_system specialists exp/specialists/final.pt exp/specialists
  $asr score-specialists exp/specialists/final.pt data/$test exp/${gmm}_ali_$test \
    exp/specialists/decode_$test $dev
  student exp/student_spec --teacher exp/specialists/final.pt --group student_spec \
    --set distill.source=topk
  report
fi
if run 14; then
  log "Stage 14: kept over student seeds ($seeds, beside stage 7's) for $students"
  for seed in $seeds; do
    for s in $students; do
      for v in $(variants); do
        student exp/seeds/${s}_${v}_s$seed --variant "$s" "$v" --role seed --set seed="$seed"
      done
    done
  done
  report
fi
