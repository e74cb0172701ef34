"""An export directory as a recogniser: audio in, words out, timed per step.

Offline (`transcribe`): each utterance's fbank, normalised by its speaker's CMVN stats (a data
dir's utt2spk) or the training data's global stats, goes through the ONNX model in one piece and
is searched. Online (`stream`): audio arrives in chunks; each chunk's new fbank frames go through
the model once the model's right context has arrived, and the search advances over them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import kaldifst
import numpy as np
import onnxruntime as ort

from asr_kd_runtime.bundle import GRAPH, MODEL, WORDS, Bundle
from asr_kd_runtime.features import (
    FbankStream,
    apply_cmvn,
    at_rate,
    cmvn_stats,
    compute_fbank,
)
from asr_kd_runtime.search import BestPath, GraphDecoder, IncrementalSearch, decode


@dataclass
class Result:
    name: str
    words: list[str]
    frames: int
    seconds: float  # audio duration
    timing: dict[str, float] = field(default_factory=dict)  # features, model, search (s)
    partials: list[tuple[float, str]] = field(default_factory=list)  # (audio s, text), online

    @property
    def text(self) -> str:
        return " ".join(self.words)


def read_words(path) -> dict[int, str]:
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                word, i = line.split()
                out[int(i)] = word
    return out


class Recognizer:
    def __init__(self, bundle: Bundle, num_threads: int = 1):
        self.bundle, self.settings = bundle, bundle.fbank
        so = ort.SessionOptions()
        so.intra_op_num_threads = num_threads
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(bundle.file(MODEL)), so,
                                            providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        d = bundle.decode
        self.decoder = GraphDecoder(kaldifst.StdVectorFst.read(str(bundle.file(GRAPH))),
                                      d["beam"], d["max_active"], d["min_active"],
                                      d["beam_delta"])
        self.acoustic_scale = float(d["acoustic_scale"])
        self.words = read_words(bundle.file(WORDS))

    def loglikes(self, feats: np.ndarray) -> np.ndarray:
        """[T, F] normalised features -> [T, P] log-likelihoods."""
        return self.session.run(None, {self.input: feats[None].astype(np.float32)})[0][0]

    def _words(self, path: BestPath | None) -> list[str]:
        return [] if path is None else [self.words[w] for w in path.words]

    def transcribe(self, utterances: Iterable[tuple[str, np.ndarray, int]],
                   utt2spk: Mapping[str, str] | None = None) -> list[Result]:
        """(name, samples, rate) per utterance -> one Result each, in order. With `utt2spk`,
        CMVN per speaker (every utterance of a speaker is read first); else the global stats."""
        feats, timing, seconds = {}, {}, {}
        for name, samples, rate in utterances:
            t0 = time.perf_counter()
            x = at_rate(samples, rate, self.settings, name)
            feats[name] = compute_fbank(x, self.settings, name)
            timing[name] = {"features": time.perf_counter() - t0}
            seconds[name] = len(samples) / rate
        if utt2spk is not None:
            stats: dict[str, np.ndarray] = {}
            for name, f in feats.items():
                spk = utt2spk[name]
                stats[spk] = stats[spk] + cmvn_stats(f) if spk in stats else cmvn_stats(f)
            norm = {n: stats[utt2spk[n]] for n in feats}
        else:
            g = self.bundle.global_cmvn
            norm = {n: g for n in feats}
        results = []
        for name, f in feats.items():
            t0 = time.perf_counter()
            ll = self.loglikes(apply_cmvn(f, norm[name]))
            t1 = time.perf_counter()
            path = decode(self.decoder, ll, self.acoustic_scale)
            t2 = time.perf_counter()
            timing[name].update(model=t1 - t0, search=t2 - t1)
            results.append(Result(name, self._words(path), len(f), seconds[name], timing[name]))
        return results

    def stream(self, name: str, chunks: Iterable[np.ndarray], rate: int,
               on_partial: Callable[[float, str], None] | None = None) -> Result:
        """One utterance fed as chunks of samples at `rate`, normalised by the global CMVN.
        Each chunk's frames are scored once the model's right context is there (the last ones
        when the audio ends, with the edge padding of the offline model) and searched; after
        each chunk the partial words go to `on_partial(audio seconds so far, text)`. Timing:
        `latency` is from the end of the audio to the final words."""
        m = self.bundle.manifest["model"]
        if not m["streamable"]:
            raise ValueError(f"{self.bundle.path}: this model sees whole utterances (no finite "
                             "context), so it cannot stream; transcribe without --online")
        left, right = int(m["left_context"]), int(m["right_context"])
        g = self.bundle.global_cmvn
        fb = FbankStream(self.settings)
        search = IncrementalSearch(self.decoder, self.acoustic_scale)
        frames = np.zeros((0, fb.fbank.dim), dtype=np.float32)
        done = 0  # frames scored and searched
        heard = 0.0
        partials = []
        timing = {"features": 0.0, "model": 0.0, "search": 0.0}

        def step(final: bool) -> None:
            nonlocal frames, done
            t0 = time.perf_counter()
            if final:
                fb.finish()
            new = fb.take()
            if len(new):
                frames = np.concatenate([frames, apply_cmvn(new, g)])
            t1 = time.perf_counter()
            ready = len(frames) if final else len(frames) - right
            t2 = t1
            if ready > done:
                # The model sees the frames from `left` before the first new one (edge-padded
                # at the start, as offline) to `right` after the last (or the edge at the end).
                lo = max(0, done - left)
                hi = len(frames) if final else ready + right
                ll = self.loglikes(frames[lo:hi])[done - lo: ready - lo]
                t2 = time.perf_counter()
                search.advance(ll)
                done = ready
            t3 = time.perf_counter()
            timing["features"] += t1 - t0
            timing["model"] += t2 - t1
            timing["search"] += t3 - t2

        for chunk in chunks:
            x = at_rate(chunk, rate, self.settings, name)
            fb.accept(x)
            heard += len(chunk) / rate
            step(final=False)
            text = " ".join(self._words(search.partial()))
            partials.append((heard, text))
            if on_partial is not None:
                on_partial(heard, text)
        t_end = time.perf_counter()
        step(final=True)
        words = self._words(search.final())
        timing["latency"] = time.perf_counter() - t_end
        return Result(name, words, len(frames), heard, timing, partials)
