#!/usr/bin/env bash
# Every GPU check in one device call (issue 20), at most 9 minutes on one H100. Here, first:
#   bash bench/gpu_pack.sh        (gpu-carry/ and shared-device/, both git-ignored)
# then on the device machine (the device tool's run):
#   command="bash bench/gpu_check.sh"  carry=["gpu-carry", "shared-device"]  timeout_s=580
# It runs, each under its own time limit, and writes logs and JSON to $OUT (else gpu-check/):
#   1. yesno, stages 0-10 on its real audio, with --device cuda and with --device cpu: every
#      system's WER must be equal and its frame accuracy within 1 point (CUDA's index_add adds
#      in thread order, so GMM statistics differ in the last bits: docs/determinism.md);
#   2. the teachers trained again on CUDA (40 epochs), SIGKILLed once their second epoch's
#      checkpoint is written, and run again: it must resume and end with the uninterrupted
#      run's validation accuracies within 0.5 points;
#   3. decoder agreement on AN4's test set (tri1 GMM and ensemble): the torch decoder on CUDA
#      against kaldi-decoder on the CPU (bench/decode_agree.py);
#   4. bash bench/run_all.sh --device cuda (speed figures; 6 benches).
# Prints PASS/FAIL per check and exits 1 if any failed.
# Usage: bash bench/gpu_check.sh [--device cuda|cpu] [--no-bench]   (cpu: a dry run of the flow)
set -uo pipefail
device=cuda
bench=true
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --no-bench) bench=false; shift ;;
    *) echo "unknown option $1" >&2; exit 1 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${OUT:-$root/gpu-check}
mkdir -p "$out"
if [ -f shared-device/setup.sh ] && ! python -c "import kaldifst" 2>/dev/null; then
  source shared-device/setup.sh || { echo "FAIL setup: the wheels in shared-device" >&2; exit 1; }
fi
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH}
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
failed=
check() {  # NAME SECONDS COMMAND...: run it (a function too) with a time limit, log to $out/NAME.log
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  if timeout "$limit" bash -c '"$@"' bash "$@" > "$out/$name.log" 2>&1; then
    echo "PASS $name ($((SECONDS - t0)) s)"
  else
    echo "FAIL $name ($((SECONDS - t0)) s; last lines of $out/$name.log:)"
    tail -n 15 "$out/$name.log" | sed 's/^/    /'
    failed+=" $name"
  fi
}

yesno() {  # DEVICE: the yesno recipe in a copy of its own, stages 0-10
  rm -rf "recipes/yesno_check_$1" && cp -r recipes/yesno "recipes/yesno_check_$1" &&
    (cd "recipes/yesno_check_$1" && bash run.sh --device "$1" --corpus-dir "$root/gpu-carry/yesno")
}
same_tables() {  # WER equal, frame accuracy within 1 point, for every system of both runs
  python - "recipes/yesno_check_$device/exp/results.json" recipes/yesno_check_cpu/exp/results.json <<'PY'
import json, sys
gpu, cpu = (json.load(open(p))["systems"] for p in sys.argv[1:])
assert gpu.keys() == cpu.keys(), (sorted(gpu), sorted(cpu))
bad = []
for name in sorted(cpu):
    g, c = gpu[name], cpu[name]
    fa = "-" if c["frame_acc"] is None else f"{g['frame_acc']:.2f} / {c['frame_acc']:.2f}"
    print(f"{name}: WER {g['wer']:.2f} / {c['wer']:.2f}, frame acc {fa} (gpu / cpu)")
    if g["wer"] != c["wer"] or (c["frame_acc"] is not None and
                                abs(g["frame_acc"] - c["frame_acc"]) > 1.0):
        bad.append(name)
assert not bad, f"differ: {bad}"
PY
}
kill_and_resume() {  # teachers on $device: straight, and killed after epoch 2 then rerun
  set -o pipefail  # the rerun's status through tee
  local d=recipes/yesno_check_$device args
  # 40 epochs (yesno's are a fraction of a second), so the kill lands well before the end
  args=(data/train_yesno exp/mono_ali_train_yesno --config conf/teachers.yaml --set epochs=40
        --device "$device")
  (cd "$d" && rm -rf exp_straight exp_killed &&
    python -m asr_kd train-teachers "${args[0]}" "${args[1]}" exp_straight "${args[@]:2}") || return 1
  (cd "$d" && { python -m asr_kd train-teachers "${args[0]}" "${args[1]}" exp_killed "${args[@]:2}" &
    pid=$!
    while kill -0 $pid 2>/dev/null && [ ! -e exp_killed/teachers/epoch-2.pt ]; do sleep 0.2; done
    kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
    [ ! -e exp_killed/teachers/.done ] || { echo "finished before the kill"; exit 1; }
    echo "killed; newest checkpoint: $(ls exp_killed/teachers | grep '^epoch-' | sort -V | tail -1)"
    python -m asr_kd train-teachers "${args[0]}" "${args[1]}" exp_killed "${args[@]:2}" \
      2>&1 | tee rerun.log; }) || return 1
  grep -q "resuming from" "$d/rerun.log" || { echo "the rerun did not resume"; return 1; }
  python - "$d/exp_straight/teachers/history.json" "$d/exp_killed/teachers/history.json" <<'PY'
import json, sys
a, b = ([m["valid_acc"] for m in json.load(open(p))[-1]["members"]] for p in sys.argv[1:])
print("last epoch's validation accuracies, straight:", a, "killed and resumed:", b)
assert len(a) == len(b) and all(abs(x - y) <= 0.5 for x, y in zip(a, b))
PY
}

export root device
export -f yesno same_tables kill_and_resume
check "yesno_$device" 150 yesno "$device"
check yesno_cpu 150 yesno cpu
check same_tables 30 same_tables
check kill_and_resume 120 kill_and_resume
check decode_agree 90 python bench/decode_agree.py --recipe gpu-carry/an4 --test test \
  --systems tri1 ensemble --device "$device" --json "$out/decode_agree.jsonl"
# the benches take what is left of about 9 minutes (each bench's figures are kept as it ends)
if $bench; then
  check run_all $((540 - SECONDS > 60 ? 540 - SECONDS : 60)) \
    bash bench/run_all.sh --device "$device" --out "$out/bench.jsonl"
fi
if [ -n "$failed" ]; then echo "failed:$failed"; exit 1; fi
echo "all GPU checks passed"
