"""The deployable model: for each system of a trained recipe, export it (float32 and int8) and
transcribe a test set with the torch-free runtime on one thread; print params, model file sizes,
real-time factors (features + model, and end to end with the search) and WER, fp32 and int8.

    python bench/export_runtime.py recipes/an4 --test-set test \
        --systems ensemble student_hard student_kd student_kdt student_big_kdt

The exports go to RECIPE/exp/NAME/export and export_int8 (reused when there; --force redoes
them). Every utterance is transcribed once to warm up, then timed (onnxruntime with one intra-op
thread; the process holds torch only to export). RTF = processing seconds / audio seconds:
features = fbank + CMVN, model = onnxruntime, search = kaldi-decoder. Per-speaker CMVN (the data
dir's utt2spk), as `asr-kd decode`, so fp32 WER is the recipe's own.
Anchor: sherpa-onnx runs a small offline Zipformer at RTF 0.036 on 2 threads, end to end.
Goals: the distilled student's features + model <= 0.02 on one thread, and end to end on AN4's
graph; int8 costs at most 0.3 WER points.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import onnxruntime  # noqa: E402
from common import REPO, cpu_name  # noqa: E402

sys.path.insert(0, str(REPO))
from asr_kd_runtime import Recognizer, load_bundle, read_audio  # noqa: E402
from asr_kd_runtime.cli import read_table  # noqa: E402

from asr_kd.score.wer import compute_wer  # noqa: E402
from asr_kd.steps.export import run_export  # noqa: E402


def measure(export_dir: Path, data_dir: Path) -> dict:
    wav = read_table(data_dir / "wav.scp", "audio file")
    utt2spk = read_table(data_dir / "utt2spk", "speaker")
    text = read_table(data_dir / "text", "transcript")
    audio = [(u, *read_audio(wav[u])) for u in sorted(wav)]
    rec = Recognizer(load_bundle(export_dir), num_threads=1)
    rec.transcribe(audio, utt2spk)  # warm-up
    results = rec.transcribe(audio, utt2spk)
    seconds = sum(r.seconds for r in results)
    t = {k: sum(r.timing[k] for r in results) for k in ("features", "model", "search")}
    wer = compute_wer({u: text[u].split() for u in text}, {r.name: r.words for r in results})
    return {"wer": round(wer.wer, 2), "wer_line": wer.kaldi_line(),
            "rtf_features": t["features"] / seconds, "rtf_model": t["model"] / seconds,
            "rtf_features_model": (t["features"] + t["model"]) / seconds,
            "rtf_end_to_end": sum(t.values()) / seconds, "audio_s": seconds,
            "model_bytes": (export_dir / "model.onnx").stat().st_size}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe_dir", type=Path)
    p.add_argument("--test-set", default="test")
    p.add_argument("--systems", nargs="+",
                   default=["ensemble", "student_hard", "student_kd", "student_kdt"])
    p.add_argument("--force", action="store_true", help="export again")
    p.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    a = p.parse_args()
    rows = []
    for system in a.systems:
        row = {"system": system}
        for precision in ("fp32", "int8"):
            d = a.recipe_dir / "exp" / system / ("export" if precision == "fp32" else
                                                 "export_int8")
            if a.force or not (d / "manifest.json").is_file():
                run_export(a.recipe_dir, system, d, int8=precision == "int8")
            row["params"] = load_bundle(d).manifest["model"]["params"]
            row[precision] = measure(d, a.recipe_dir / "data" / a.test_set)
            print(f"{system} {precision}: {row[precision]['wer_line']} RTF "
                  f"{row[precision]['rtf_features_model']:.4f} (features + model), "
                  f"{row[precision]['rtf_end_to_end']:.4f} (end to end)", flush=True)
        rows.append(row)
    print(f"\n{cpu_name()}, onnxruntime {onnxruntime.__version__}, 1 thread; "
          f"{a.recipe_dir} {a.test_set}\n")
    print("| system | params | size fp32 / int8 (MB) | RTF features+model fp32 / int8 | "
          "RTF end to end fp32 / int8 | WER % fp32 / int8 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        f, q = r["fp32"], r["int8"]
        print(f"| {r['system']} | {r['params']:,} | {f['model_bytes'] / 1e6:.2f} / "
              f"{q['model_bytes'] / 1e6:.2f} | {f['rtf_features_model']:.4f} / "
              f"{q['rtf_features_model']:.4f} | {f['rtf_end_to_end']:.4f} / "
              f"{q['rtf_end_to_end']:.4f} | {f['wer']:.2f} / {q['wer']:.2f} |")
    if a.out:
        a.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
