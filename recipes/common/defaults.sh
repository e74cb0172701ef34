# The option defaults every recipe shares, the only place they are set: stages 0-14 of run.sh and
# common/stages.sh. Source it in run.sh first, then set what differs for the corpus (stop_stage,
# corpus options, yesno's gmm=mono), then source common/options.sh, so that every one of them is
# an option (`--temperatures "1 10"`, `--conf-dir conf_ci`).
stage=0                   # --stage: the first stage to run (--stop-stage, the last: run.sh)
device=auto               # --device of every stage: auto, cpu, cuda, cuda:N
conf_dir=conf             # an overlay of conf/ (e.g. conf_ci; see common/stages.sh)
temperatures="1 2 5 10"   # stage 11: temperature sweep at conf/student.yaml's alpha
alphas="0.2 0.8"          # stage 11: alpha sweep at conf/student.yaml's temperature
transfer_weights="0.25 0.75"  # stage 11: transfer-weight sweep of student_kdt
shares=3                  # stage 12: percent of the training utterances for Table 5
students=student          # stage 7: conf/S.yaml -> exp/S_hard, exp/S_kd (, exp/S_kdt) for each S
test_sets=                # every test set, decoded and reported (empty: run.sh's $test alone)
speed_factors=            # stage 3: e.g. "0.9 1.1": the DNNs train on data/${train}_sp
transfer_sets=            # stage 7: untranscribed data dirs under data/ -> exp/S_kdt
transfer_speed_factors=   # stage 3: e.g. "0.8 1.2": copies of $train alone, one more transfer set
transfer_vtln_factors=    # stage 3: e.g. "0.9 1.1": VTLN copies of the DNNs' training set, one more
seeds="101 102"           # stage 14: more seeds of stage 7's student pair, for kept's spread
allow_pipes=false         # stage 3: wav.scp entries may be commands (`cmd |`)
decoder=auto              # stages 9, 11-14: auto (torch on a GPU, else reference), reference
                          # (kaldi-decoder, CPU) or torch (ours, --device)
gmm=tri1                  # stages 4-5: the DNN targets' GMM, tri1 (tied triphones), tri2, tri3 or mono
sil_prob=0.5              # stage 2: optional silence between words in L
dev_set=                  # stage 9: a data dir under data/ (run.sh's dev speakers) whose WER
                          # picks each system's LM weight and penalty for the test sets
lm_weights=7:17           # stage 9, with a dev set: the LM weights searched (Kaldi's score.sh)
word_ins_penalties="0 0.5 1.0"  # stage 9, with a dev set: the penalties searched
decode_jobs=1             # stage 9: systems decoded at once (each holds its graph in memory)
