# The option defaults the distillation recipes share (stages 3-12 of common/stages.sh). Source it
# in run.sh before common/options.sh, so that `--temperatures "1 10"` and the like are options.
temperatures="1 2 5 10"   # stage 11: temperature sweep at conf/student.yaml's alpha
alphas="0.2 0.8"          # stage 11: alpha sweep at conf/student.yaml's temperature
shares=3                  # stage 12: percent of the training utterances for Table 5
students=student          # stage 7: conf/S.yaml -> exp/S_hard, exp/S_kd for each S
seeds="101 102"           # stage 14: more seeds of stage 7's student pair, for kept's spread
allow_pipes=false         # stage 3: wav.scp entries may be commands (`cmd |`)
decoder=reference         # stages 9, 11-14: reference (kaldi-decoder, CPU) or torch (--device)
gmm=tri1                  # stages 4-5: the DNN targets' GMM, tri1 (tied triphones) or mono
