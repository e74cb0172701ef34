"""asr-kd-transcribe EXPORT_DIR INPUT... : print `name<TAB>text` per utterance.

INPUT is an audio file (WAV, FLAC, MP3, SPHERE; any sample rate, resampled), a Kaldi `wav.scp`,
or a Kaldi data dir (wav.scp and utt2spk: CMVN per speaker, as `asr-kd decode` does). Audio
without a speaker is normalised with the training data's global CMVN stats. `--online` feeds
each file in chunks and prints partial results to stderr as they change.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from asr_kd_runtime.audio import AudioError, read_audio
from asr_kd_runtime.bundle import ExportError, load_bundle
from asr_kd_runtime.recognizer import Recognizer, Result

log = logging.getLogger("asr_kd_runtime")


def read_table(path: Path, what: str) -> dict[str, str]:
    """A Kaldi two-column table (`key value...`); errors name the file and line."""
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise ValueError(f"{path}:{n}: expected '<id> <{what}>', got {line!r}")
        if parts[0] in out:
            raise ValueError(f"{path}:{n}: duplicate id {parts[0]!r}")
        out[parts[0]] = parts[1].strip()
    return out


def _scp_entries(scp: Path) -> Iterator[tuple[str, str]]:
    for name, spec in read_table(scp, "audio file").items():
        if spec.endswith("|"):
            raise ValueError(f"{scp}: {name}: a command pipe; the runtime reads audio files only")
        yield name, spec  # a relative path is relative to the current directory, as in Kaldi


def inputs(paths: list[str]) -> tuple[list[tuple[str, str]], dict[str, str] | None]:
    """(name, audio path) for every input, and utt2spk when the inputs are one data dir."""
    entries, utt2spk = [], None
    for p in map(Path, paths):
        if p.is_dir():
            if len(paths) != 1:
                raise ValueError(f"{p}: a data dir must be the only input")
            if not (p / "wav.scp").is_file():
                raise ValueError(f"{p}: not a data dir (no wav.scp)")
            if (p / "segments").is_file():
                raise ValueError(f"{p}: has segments; the runtime reads whole recordings")
            entries = list(_scp_entries(p / "wav.scp"))
            if (p / "utt2spk").is_file():
                utt2spk = read_table(p / "utt2spk", "speaker")
                missing = [u for u, _ in entries if u not in utt2spk]
                if missing:
                    raise ValueError(f"{p / 'utt2spk'}: no speaker for utterance {missing[0]!r}")
        elif p.name == "wav.scp" or p.suffix == ".scp":
            entries += list(_scp_entries(p))
        else:
            entries.append((p.stem, str(p)))
    return entries, utt2spk


def _chunks(samples: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for i in range(0, len(samples), size):
        yield samples[i: i + size]


def run(args) -> list[Result]:
    bundle = load_bundle(args.export_dir)
    rec = Recognizer(bundle, num_threads=args.threads)
    entries, utt2spk = inputs(args.inputs)
    audio = [(name, *read_audio(path)) for name, path in entries]
    if not args.online:
        return rec.transcribe(audio, utt2spk)
    results = []
    for name, samples, rate in audio:
        def show(heard: float, text: str, name=name) -> None:
            print(f"{name} {heard:.2f}s: {text}", file=sys.stderr)
        size = max(1, round(args.chunk * rate))
        results.append(rec.stream(name, _chunks(samples, size), rate,
                                  on_partial=show if args.partials else None))
    return results


def summary(results: list[Result]) -> dict:
    """Real-time factors over all utterances: features + model, and end to end."""
    audio = sum(r.seconds for r in results)
    t = {k: sum(r.timing.get(k, 0.0) for r in results) for k in ("features", "model", "search")}
    out = {"utterances": len(results), "audio_s": round(audio, 3),
           "rtf_features_model": (t["features"] + t["model"]) / audio if audio else None,
           "rtf_end_to_end": sum(t.values()) / audio if audio else None}
    lat = [r.timing["latency"] for r in results if "latency" in r.timing]
    if lat:
        out["latency_mean_s"] = float(np.mean(lat))
        out["latency_max_s"] = float(np.max(lat))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asr-kd-transcribe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export_dir", help="a directory `asr-kd export` wrote")
    p.add_argument("inputs", nargs="+", help="audio files, a wav.scp, or one data dir")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    p.add_argument("--online", action="store_true",
                   help="stream each file in chunks (global CMVN)")
    p.add_argument("--chunk", type=float, default=0.2, help="online chunk length (s)")
    p.add_argument("--partials", action="store_true",
                   help="online: print each partial result to stderr")
    p.add_argument("--timing", metavar="JSON",
                   help="write the real-time factors (and online latency) here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    t0 = time.perf_counter()
    try:
        results = run(args)
    except (AudioError, ExportError, ValueError, FileNotFoundError) as e:
        print(f"asr-kd-transcribe: error: {e}", file=sys.stderr)
        return 1
    for r in results:
        print(f"{r.name}\t{r.text}")
    s = summary(results)
    s["wall_s"] = time.perf_counter() - t0
    if args.timing:
        Path(args.timing).write_text(json.dumps(s, indent=2) + "\n")
    log.info("%d utterances, %.1f s of audio: RTF %.4f (features + model), %.4f (end to end)",
             s["utterances"], s["audio_s"], s["rtf_features_model"] or 0,
             s["rtf_end_to_end"] or 0)
    return 0
