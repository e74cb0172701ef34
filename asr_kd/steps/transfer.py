"""Transfer sets for `train-student`: untranscribed data dirs, checked before anything is
written, then featurised with the training data's own fbank settings (resampled where the audio
has another rate) and per-speaker CMVN, and stored for memory-mapped reading
(asr_kd.train.transfer)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import soundfile as sf

from asr_kd.data import DataDir, DataDirError, load_data_dir
from asr_kd.data.audio import is_pipe
from asr_kd.data.datadir import data_error
from asr_kd.features import FbankConfig, iter_normalised_feats
from asr_kd.steps.feats import run_compute_feats
from asr_kd.train.transfer import FrameStore, store_dir, write_frame_store
from asr_kd.utils.config import load_config, to_dict
from asr_kd.utils.io import is_done, write_lines

log = logging.getLogger(__name__)


def check_transfer_dir(path) -> DataDir:
    """The data dir, or the first problem raised: no dir, no wav.scp or utt2spk, no utterance,
    a missing audio file (named with its wav.scp line and utterance). A `text` is allowed and
    ignored; so is a missing spk2utt, which only restates utt2spk (CMVN reads utt2spk)."""
    spk2utt = Path(path) / "spk2utt"

    def report(err: DataDirError) -> None:
        if spk2utt.is_file() or not str(err).startswith(f"{spk2utt}"):
            raise err

    d = load_data_dir(path, require_text=False, check_audio_exists=True, report=report)
    if not d.utts:
        raise data_error(Path(path) / "wav.scp", None,
                         "transfer set is empty: no utterances to label")
    return d


def _rate_of(d: DataDir) -> int | None:
    spec = d.wav[d.recording_of(d.utts[0])]
    if is_pipe(spec):
        return None
    try:
        return sf.info(spec).samplerate
    except (sf.LibsndfileError, RuntimeError):
        return None  # compute-feats will name the problem


def prepare_transfer(dirs: list[str], train_data_dir, device) -> list[FrameStore]:
    """Every transfer dir checked first (so a bad one stops the stage before any training and
    before anything is written), then each one's frame store, made once per fbank setting."""
    checked = [check_transfer_dir(p) for p in dirs]
    fbank_yaml = Path(train_data_dir) / "fbank.yaml"
    if not fbank_yaml.is_file():
        raise FileNotFoundError(f"{fbank_yaml}: missing; the training data's features (stage 3) "
                                f"set the transfer sets' fbank settings")
    cfg = dataclasses.replace(load_config(FbankConfig, fbank_yaml), resample=True)
    meta = {"fbank": to_dict(cfg), "source": str(train_data_dir)}
    stores = []
    for path, d in zip(dirs, checked):
        spk2utt = Path(path) / "spk2utt"
        if not spk2utt.is_file():  # compute-feats reads it; it only restates utt2spk
            log.info("%s: writing spk2utt from utt2spk", path)
            by_spk: dict[str, list[str]] = {}
            for utt in sorted(d.utt2spk):
                by_spk.setdefault(d.utt2spk[utt], []).append(utt)
            write_lines(spk2utt, (f"{k} {' '.join(v)}" for k, v in sorted(by_spk.items())))
        made = store_dir(path) / "frames.json"
        if not (is_done(store_dir(path)) and
                json.loads(made.read_text()).get("fbank") == meta["fbank"]):
            rate = _rate_of(d)
            if rate is not None and rate != cfg.sample_rate:
                log.info("%s: audio at %d Hz is resampled to %d Hz (the training data's fbank)",
                         path, rate, cfg.sample_rate)
            try:
                run_compute_feats(path, cfg, device)
            except ValueError as e:  # it names the utterance; say which transfer set
                raise ValueError(f"{Path(path) / 'wav.scp'}: {e}") from None
            write_frame_store(path, iter_normalised_feats(path, d.utt2spk), meta)
        store = FrameStore(path)
        if store.num_frames == 0:
            raise data_error(Path(path) / "wav.scp", None, "transfer set has no usable frames")
        log.info("transfer set %s: %d utterances, %d frames (%.2f h)", path, len(store),
                 store.num_frames, store.num_frames * cfg.frame_shift_ms / 3.6e6)
        stores.append(store)
    return stores
