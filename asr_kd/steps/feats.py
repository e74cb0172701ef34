"""Stage 3: log-mel filterbank and per-speaker CMVN statistics for a data dir."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from asr_kd.data import iter_utterance_audio, load_data_dir
from asr_kd.features import FbankConfig, compute_feats_for_data_dir
from asr_kd.utils.config import save_config
from asr_kd.utils.io import clear_done, mark_done

log = logging.getLogger(__name__)


def run_compute_feats(data_dir, cfg: FbankConfig, device, allow_pipes: bool = False) -> None:
    data_dir = Path(data_dir)
    clear_done(data_dir, "feats")
    d = load_data_dir(data_dir, allow_pipes=allow_pipes, require_text=False)
    t0 = time.time()
    waves = iter_utterance_audio(d, allow_pipes, cfg.sample_rate, cfg.resample)
    frames = compute_feats_for_data_dir(data_dir, waves, d.utt2spk, cfg, device,
                                        utt2warp=d.utt2warp)
    save_config(cfg, data_dir / "fbank.yaml")
    log.info("%s: %d utterances, %d frames (%.0fx real time on %s)", data_dir, len(d.utts),
             frames, frames * cfg.frame_shift_ms / 1000 / max(time.time() - t0, 1e-9), device)
    if d.utt2warp:
        log.info("%s: VTLN warp factors of %d utterances from %s", data_dir, len(d.utt2warp),
                 "spk2warp" if (data_dir / "spk2warp").is_file() else "utt2warp")
    mark_done(data_dir, "feats")
