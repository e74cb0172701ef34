"""Transfer sets: untranscribed audio that only the teachers label (asr_kd.train.transfer).

The loss gives transfer frames the soft term alone (checked by hand), their chunks gather the
same windows as the labelled ChunkSet, and `train-student` trains on a transfer dir without a
`text` (resampled from 16 kHz for the 8 kHz yesno recipe), in both soft-target modes. A bad
transfer dir stops the stage before anything is written, with the file and utterance named.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr_kd.train.chunks import ChunkSet
from asr_kd.train.distill import DistillConfig, kd_loss
from asr_kd.train.transfer import IGNORE, SOFT_ONLY, FrameStore, TransferChunks, write_frame_store
from tests.conftest import corpus

LOGITS = [[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [-1.0, 1.0, 3.0], [0.0, 0.0, 0.0]]
SOFT = [[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [1 / 3, 1 / 3, 1 / 3]]


def test_transfer_frames_carry_only_the_soft_term():
    """Frames: labelled (pdf 0), transfer (SOFT_ONLY), labelled (pdf 2), padding (IGNORE).
    Per frame: alpha T^2 KL + (1 - alpha) CE for labelled frames, alpha T^2 KL for transfer
    frames, nothing for padding; the loss is the mean over the three real frames."""
    alpha, t = 0.75, 2.0
    hard = torch.tensor([0, SOFT_ONLY, 2, IGNORE])
    z = torch.tensor(LOGITS)
    cfg = DistillConfig(alpha=alpha, temperature=t)

    def by_hand():
        total = 0.0
        for zf, pf, y in zip(LOGITS, SOFT, hard.tolist()):
            if y == IGNORE:
                continue
            lq = [v / t - math.log(sum(math.exp(w / t) for w in zf)) for v in zf]
            kl = sum(p * (math.log(p) - q) for p, q in zip(pf, lq))
            total += alpha * t * t * kl
            if y >= 0:
                total += (1 - alpha) * -(zf[y] - math.log(sum(math.exp(w) for w in zf)))
        return total / 3

    got = kd_loss(z, hard, cfg, soft_logp=torch.tensor(SOFT).log())
    assert float(got) == pytest.approx(by_hand(), rel=1e-6)
    # The same frames as a batch of two chunks of two frames: the same mean.
    got2 = kd_loss(z.view(2, 2, 3), hard.view(2, 2), cfg, soft_logp=torch.tensor(SOFT).log()
                   .view(2, 2, 3))
    assert float(got2) == pytest.approx(by_hand(), rel=1e-6)
    # A transfer frame's hard target does not exist: changing the soft target of the padding
    # frame changes nothing, changing the transfer frame's logits changes the soft term only.
    soft = torch.tensor(SOFT).log()
    soft[3] = float("nan")
    assert float(kd_loss(z, hard, cfg, soft_logp=soft)) == pytest.approx(by_hand(), rel=1e-6)
    # At alpha = 0 a transfer frame adds nothing but still counts in the mean over frames.
    hard_only = kd_loss(z, hard, DistillConfig(alpha=0.0))
    ce = [-(LOGITS[i][y] - math.log(sum(math.exp(w) for w in LOGITS[i]))) for i, y in
          ((0, 0), (2, 2))]
    assert float(hard_only) == pytest.approx(sum(ce) / 3, rel=1e-6)


def _store(tmp_path: Path, feats: dict[str, np.ndarray]) -> FrameStore:
    write_frame_store(tmp_path, ((u, feats[u]) for u in sorted(feats)), {"fbank": {}})
    return FrameStore(tmp_path)


def test_transfer_chunks_gather_the_chunkset_windows(tmp_path):
    rng = np.random.default_rng(0)
    feats = {f"u{i}": rng.standard_normal((n, 3)).astype(np.float32)
             for i, n in enumerate([5, 17, 32, 1])}
    store = _store(tmp_path, feats)
    assert store.num_frames == 55 and set(store) == set(feats)
    assert np.array_equal(store["u1"].numpy(), feats["u1"])
    left, right, chunk = 3, 2, 8
    ours = TransferChunks([store], left, right, chunk)
    ref = ChunkSet(feats, {u: np.zeros(len(x), np.int64) for u, x in feats.items()}, left,
                   right, chunk, torch.device("cpu"))
    assert len(ours) == len(ref) == 1 + 3 + 4 + 1
    idx = np.arange(len(ours))
    x, y, extra = ours.batch(idx, "cpu")
    xr, yr, _ = ref.batch(torch.from_numpy(idx))
    assert extra == {}
    # Equal wherever a real frame's window reaches (past an utterance's end ChunkSet reads on
    # into the next one's padding, where only IGNORE targets sit).
    for b, n in enumerate(ref.chunk_len.tolist()):
        assert torch.equal(x[b, :n + left + right], xr[b, :n + left + right]), b
    assert torch.equal(y == SOFT_ONLY, yr == 0) and torch.equal(y == IGNORE, yr == -100)


def test_transfer_draws_cover_every_chunk_and_resume(tmp_path):
    feats = {f"u{i}": np.zeros((16 * (i + 1), 2), np.float32) for i in range(4)}
    chunks = TransferChunks([_store(tmp_path, feats)], 0, 0, 16)
    n = len(chunks)  # 10
    first = chunks.draws(7, 0, 25)
    assert sorted(first[:n]) == list(range(n)) and sorted(first[n:2 * n]) == list(range(n))
    assert np.array_equal(np.concatenate([chunks.draws(7, 0, 13), chunks.draws(7, 13, 12)]),
                          first)
    assert not np.array_equal(chunks.draws(8, 0, n), first[:n])


def test_copies_of_held_out_utterances_are_left_out(tmp_path):
    feats = {u: np.full((20, 2), i, np.float32)
             for i, u in enumerate(["a", "sp0.8-a", "sp1.2-a", "sp0.8-b", "libri-1"])}
    held = {"a"}
    chunks = TransferChunks([_store(tmp_path, feats)], 0, 0, 16,
                            held_out=lambda u: u.removeprefix("sp0.8-").removeprefix("sp1.2-")
                            in held)
    assert chunks.held_out_utts == 3 and chunks.num_frames == 40 and len(chunks) == 4
    x, _, _ = chunks.batch(np.arange(len(chunks)), "cpu")
    assert sorted({int(v) for v in x[:, 0, 0]}) == [3, 4]  # sp0.8-b and libri-1 alone


def _an4_transfer_dir(path: Path, n: int, with_text: bool) -> Path:
    """n AN4 recordings (16 kHz, speakers other than yesno's) as a data dir with no `text`."""
    wavs = sorted((corpus("an4") / "wav" / "an4_clstk").rglob("*.wav"))[:n]
    path.mkdir(parents=True)
    utts = {f"an4-{w.parent.name}-{w.stem}": w for w in wavs}
    (path / "wav.scp").write_text("".join(f"{u} {w}\n" for u, w in sorted(utts.items())))
    (path / "utt2spk").write_text("".join(f"{u} an4-{w.parent.name}\n"
                                          for u, w in sorted(utts.items())))
    if with_text:
        (path / "text").write_text("".join(f"{u} IGNORED WORDS\n" for u in sorted(utts)))
    return path


def _train_student(rdir: Path, out: str, *sets: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "asr_kd", "train-student", "data/train_yesno",
         "exp/mono_ali_train_yesno", out, "--config", "conf/student.yaml", "--teacher",
         "exp/ensemble/final.pt", "--set", "epochs=2", *[a for s in sets for a in ("--set", s)],
         "--device", "cpu"], cwd=rdir, text=True, capture_output=True, timeout=900)


@pytest.mark.parametrize("source", ["online", "topk"])
def test_student_trains_on_a_transfer_dir_without_text(yesno_run, source):
    rdir, _ = yesno_run
    tdir = rdir / "data" / "transfer_an4"
    if not tdir.exists():
        _an4_transfer_dir(tdir, 12, with_text=False)
    out = f"exp/kdt_{source}"
    proc = _train_student(rdir, out, "distill.transfer=[data/transfer_an4]",
                          f"distill.source={source}", "distill.transfer_weight=0.25")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "data/transfer_an4: audio at 16000 Hz is resampled to 8000 Hz" in proc.stderr \
        or source == "topk"  # the store is made once, by the first of the two runs
    run = json.loads((rdir / out / "run.json").read_text())
    assert run["settings"]["variant"] == "kdt"
    assert run["settings"]["transfer"] == ["data/transfer_an4"]
    # 64 labelled chunks per step and round(64 * 0.25 / 0.75) = 21 transfer chunks.
    assert "21 chunks beside every 64 labelled ones" in proc.stderr
    store = FrameStore(tdir)
    assert len(store) == 12 and store.meta["fbank"]["sample_rate"] == 8000
    # 8 kHz frames of 10 ms: 100 frames per second of 16 kHz audio.
    secs = [sf.info(w.split()[1]).duration for w in (tdir / "wav.scp").read_text().splitlines()]
    assert store.num_frames == pytest.approx(100 * sum(secs), abs=3 * len(secs))
    if source == "topk":
        caches = list((rdir / "exp/ensemble/soft_targets").rglob("transfer/transfer_an4-*"))
        assert len(caches) == 1
        ids = np.load(caches[0] / "ids.npy", mmap_mode="r")
        assert ids.shape[0] == store.num_frames


BAD_DIRS = {  # wav.scp, and the error (after "<the dir>/wav.scp")
    "empty": ("", ": transfer set is empty: no utterances to label"),
    "missing": ("a-1 {missing}\n", ":1: utterance 'a-1': audio file '{missing}' does not exist"),
    "short": ("a-1 {short}\n", ": utterance 'a-1' is too short for one frame (40 samples)"),
}


@pytest.mark.parametrize("case", sorted(BAD_DIRS))
def test_bad_transfer_dir_is_named_and_nothing_is_written(yesno_run, tmp_path, case):
    rdir, _ = yesno_run
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(40, np.int16), 8000)
    files = {"missing": tmp_path / "nope.wav", "short": short}
    wav, msg = (s.format(missing=files["missing"], short=short) for s in BAD_DIRS[case])
    bad = tmp_path / f"bad_{case}"
    msg = f"{bad}/wav.scp{msg}"
    bad.mkdir()
    (bad / "wav.scp").write_text(wav)
    (bad / "utt2spk").write_text("a-1 a\n" if wav else "")
    out = rdir / "exp" / f"bad_{case}"
    proc = _train_student(rdir, str(out), f"distill.transfer=[{bad}]")
    assert proc.returncode != 0
    assert msg in proc.stderr, proc.stderr[-2000:]
    # Nothing but the stage's log, which records the error.
    assert [p.relative_to(out).as_posix() for p in out.rglob("*")] == ["log",
                                                                      "log/train-student.log"]
    assert msg in (out / "log" / "train-student.log").read_text()

