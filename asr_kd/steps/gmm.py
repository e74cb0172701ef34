"""Stages 4-5: monophone, triphone (tri1), LDA+MLLT (tri2) and speaker-adapted (tri3, SAT)
GMM-HMM training, forced alignment (the DNN targets)."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr_kd.features import as_tensors
from asr_kd.hmm.lda_mllt import write_kaldi_matrix
from asr_kd.hmm.model import GmmHmm
from asr_kd.hmm.sat import (
    FmllrConfig,
    align_fmllr,
    apply_transforms,
    read_transforms,
    write_transforms,
)
from asr_kd.hmm.train_lda_mllt import Tri2Config, train_lda_mllt
from asr_kd.hmm.train_mono import (
    MonoConfig,
    align_batched,
    compile_graphs,
    save_alignment_info,
    train_mono,
)
from asr_kd.hmm.train_sat import SatConfig, train_sat
from asr_kd.hmm.train_tri import TriConfig, train_tri
from asr_kd.lang import load_lang
from asr_kd.steps.common import load_dir_feats, read_int_vectors, write_int_vectors
from asr_kd.utils.config import save_config, to_dict
from asr_kd.utils.io import clear_done, mark_done
from asr_kd.utils.runinfo import write_run

log = logging.getLogger(__name__)


def run_train_mono(data_dir, lang_dir, exp_dir, cfg: MonoConfig, device) -> None:
    exp_dir = Path(exp_dir)
    clear_done(exp_dir)
    d, feats = load_dir_feats(data_dir, lang_dir=lang_dir)
    lang = load_lang(lang_dir)
    save_config(cfg, exp_dir / "config.yaml")
    model = train_mono(lang, as_tensors(feats), d.text, cfg, device, where=f"{data_dir}/text")
    model.save(exp_dir / "final.mdl")
    write_run(exp_dir, "gmm", {"kind": "mono"}, device=device, config=to_dict(cfg),
              data=str(data_dir), lang=str(lang_dir))
    mark_done(exp_dir)


def _source_system(data_dir, lang_dir, ali_dir, exp_dir, cfg, device):
    """What a triphone stage starts from: (data dir, its features, lang, the source model in
    `ali_dir` and its transition-id alignments); the config is saved in `exp_dir` first."""
    clear_done(exp_dir)
    d, feats = load_dir_feats(data_dir, lang_dir=lang_dir)
    lang = load_lang(lang_dir)
    save_config(cfg, exp_dir / "config.yaml")
    src = GmmHmm.load(ali_dir / "final.mdl", device)
    alis = read_int_vectors(ali_dir / "tid.ark")
    return d, as_tensors(feats), lang, src, alis


def run_train_tri(data_dir, lang_dir, ali_dir, exp_dir, cfg: TriConfig, device) -> None:
    """A triphone system from the model and transition-id alignments in `ali_dir`."""
    exp_dir, ali_dir = Path(exp_dir), Path(ali_dir)
    d, feats, lang, src, alis = _source_system(data_dir, lang_dir, ali_dir, exp_dir, cfg, device)
    model = train_tri(lang, feats, d.text, src, alis, cfg, device, where=f"{data_dir}/text")
    model.save(exp_dir / "final.mdl")
    write_run(exp_dir, "gmm", {"kind": "tri"}, device=device, config=to_dict(cfg),
              data=str(data_dir), lang=str(lang_dir), ali=str(ali_dir))
    mark_done(exp_dir)


def run_train_lda_mllt(data_dir, lang_dir, ali_dir, exp_dir, cfg: Tri2Config, device) -> None:
    """tri2, an LDA+MLLT triphone system, from the model and transition-id alignments in
    `ali_dir` (Kaldi's train_lda_mllt.sh): final.mdl carries the feature matrix, which is also
    written as Kaldi's final.mat; run.json records each MLLT update's objective."""
    exp_dir, ali_dir = Path(exp_dir), Path(ali_dir)
    d, feats, lang, src, alis = _source_system(data_dir, lang_dir, ali_dir, exp_dir, cfg, device)
    model, mllt = train_lda_mllt(lang, feats, d.text, src, alis, cfg, device,
                                 where=f"{data_dir}/text")
    model.save(exp_dir / "final.mdl")
    write_kaldi_matrix(exp_dir / "final.mat", model.feature.transform)
    write_run(exp_dir, "gmm", {"kind": "tri2"}, device=device, config=to_dict(cfg),
              data=str(data_dir), lang=str(lang_dir), ali=str(ali_dir), mllt=mllt)
    mark_done(exp_dir)


def run_train_sat(data_dir, lang_dir, ali_dir, exp_dir, cfg: SatConfig, device) -> None:
    """tri3, a speaker-adapted system, from the speaker-independent model and transition-id
    alignments in `ali_dir` (Kaldi's train_sat.sh): final.mdl (the SAT model), final.alimdl
    (its speaker-independent twin, for the first pass of align and decode), trans.ark/.scp
    (the training speakers' fMLLR transforms), final.mat (the source's feature matrix);
    run.json records each fMLLR estimate's auxf gain."""
    exp_dir, ali_dir = Path(exp_dir), Path(ali_dir)
    d, feats, lang, src, alis = _source_system(data_dir, lang_dir, ali_dir, exp_dir, cfg, device)
    sat = train_sat(lang, feats, d.text, d.utt2spk, src, alis, cfg, device,
                    where=f"{data_dir}/text")
    sat.model.save(exp_dir / "final.mdl")
    sat.alimdl.save(exp_dir / "final.alimdl")
    write_transforms(exp_dir, sat.transforms)
    if sat.model.feature.transform is not None:
        write_kaldi_matrix(exp_dir / "final.mat", sat.model.feature.transform)
    write_run(exp_dir, "gmm", {"kind": "tri3"}, device=device, config=to_dict(cfg),
              data=str(data_dir), lang=str(lang_dir), ali=str(ali_dir),
              fmllr_init=sat.fmllr_init, fmllr=sat.fmllr)
    mark_done(exp_dir)


@dataclass
class GmmAlignConfig(SatConfig, Tri2Config):
    """Every key of a mono, tri1, tri2 or tri3 config, so that `align` reads any of them;
    alignment uses `align` (and `fmllr` for a speaker-adapted model)."""


def run_align(data_dir, lang_dir, model_dir, out_dir, cfg: MonoConfig, device,
              transform_dir=None) -> None:
    """Align `data_dir` to its transcripts: ali.ark (pdf ids), tid.ark (transition ids),
    num_pdfs and priors (pdf counts), and a copy of the model (final.mdl) that reads tid.ark.

    A speaker-adapted model (tri3) aligns fMLLR-adapted features, with the transforms of
    `transform_dir`/trans.scp (every speaker of `data_dir` must have one), or else estimated
    here as Kaldi's align_fmllr.sh does (asr_kd.hmm.sat.align_fmllr, from the model dir's
    final.alimdl); either way they are written to `out_dir`/trans.{ark,scp}, and final.alimdl
    is copied beside final.mdl."""
    out_dir, model_dir = Path(out_dir), Path(model_dir)
    clear_done(out_dir)
    d, feats = load_dir_feats(data_dir, lang_dir=lang_dir)
    lang = load_lang(lang_dir)
    model = GmmHmm.load(model_dir / "final.mdl", device)
    graphs = compile_graphs(lang, model.tm, d.text, f"{data_dir}/text", model.ctx)
    gfeats = {u: model.feature.apply(x) for u, x in as_tensors(feats).items()}
    if not model.speaker_adapted:
        if transform_dir is not None:
            raise ValueError(f"{model_dir}/final.mdl is not speaker-adapted: it takes no "
                             "transforms (--transform-dir)")
        tids = align_batched(model, graphs, gfeats, cfg.align)
    elif transform_dir is not None:
        transforms = read_transforms(transform_dir)
        gfeats = apply_transforms(gfeats, transforms, d.utt2spk)  # every speaker, or an error
        log.info("fMLLR transforms of %d speakers from %s", len(transforms), transform_dir)
        tids = align_batched(model, graphs, gfeats, cfg.align)
        write_transforms(out_dir, {s: transforms[s] for s in sorted(set(d.utt2spk.values()))})
    else:
        alimdl = GmmHmm.load(model_dir / "final.alimdl", device)
        tids, transforms, _ = align_fmllr(model, alimdl, graphs, gfeats, d.utt2spk,
                                          lang.silence_phones, cfg.align,
                                          getattr(cfg, "fmllr", FmllrConfig()), device)
        write_transforms(out_dir, transforms)
    failed = sorted(set(d.utts) - set(tids))
    if failed:
        log.warning("%d of %d utterances could not be aligned: %s", len(failed), len(d.utts),
                    " ".join(failed[:10]))
    pdfs = {u: model.tm.tid2pdf[t] for u, t in tids.items()}
    write_int_vectors(out_dir / "tid.ark", tids)
    write_int_vectors(out_dir / "ali.ark", pdfs)
    save_alignment_info(out_dir, model.tm, pdfs)
    shutil.copyfile(model_dir / "final.mdl", out_dir / "final.mdl")
    if model.speaker_adapted:
        shutil.copyfile(model_dir / "final.alimdl", out_dir / "final.alimdl")
    else:  # what a speaker-adapted model left here before
        for name in ("final.alimdl", "trans.ark", "trans.scp"):
            (out_dir / name).unlink(missing_ok=True)
    frames = sum(len(p) for p in pdfs.values())
    sil = set(lang.silence_phones)
    sil_share = np.mean(np.concatenate([np.isin(model.tm.tid2phone[t], list(sil))
                                        for t in tids.values()]))
    log.info("aligned %d utterances, %d frames (%.1f%% silence)", len(tids), frames,
             100 * sil_share)
    mark_done(out_dir)
