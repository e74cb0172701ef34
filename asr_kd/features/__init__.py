"""Kaldi-compatible features: fbank, CMVN, deltas/MFCC/splicing, ark/scp storage."""

from asr_kd.features.cmvn import accumulate_cmvn, apply_cmvn, cmvn_stats
from asr_kd.features.fbank import (
    FbankConfig,
    fbank,
    fbank_utterances,
    mel_banks,
    num_frames,
)
from asr_kd.features.storage import (
    as_tensors,
    compute_feats_for_data_dir,
    iter_normalised_feats,
    load_feats,
    read_scp_matrices,
    write_cmvn,
    write_feats,
    write_matrices,
)
from asr_kd.features.transforms import (
    add_deltas,
    dct_matrix,
    delta_scales,
    mfcc_from_fbank,
    splice,
)

__all__ = [
    "FbankConfig",
    "accumulate_cmvn",
    "add_deltas",
    "apply_cmvn",
    "as_tensors",
    "cmvn_stats",
    "compute_feats_for_data_dir",
    "dct_matrix",
    "delta_scales",
    "fbank",
    "fbank_utterances",
    "iter_normalised_feats",
    "load_feats",
    "mel_banks",
    "mfcc_from_fbank",
    "num_frames",
    "read_scp_matrices",
    "splice",
    "write_cmvn",
    "write_feats",
    "write_matrices",
]
