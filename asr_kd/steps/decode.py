"""Stage 9: decode a data dir with one system; write hypotheses, WER and frame accuracy.

Any registered decoder (asr_kd.decode.base) over the same HCLG, acoustic scale and beam:
`reference` (kaldi-decoder's FasterDecoder, one utterance at a time on the CPU) or `torch`
(asr_kd.decode.torch_decoder, each batch of utterances at once, on the chosen device).

Outputs in the decode dir: hyp.txt (Kaldi `text`), wer (Kaldi's %WER line), scores.json.
Where the graph dir has a score map (score_map.txt, from the lang dir; asr_kd.score.wer), both
the references and the hypotheses are mapped with it before scoring, as TIMIT's 48 phones are
folded to 39: hyp.txt stays as decoded, and score_ref.txt / score_hyp.txt hold what was scored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asr_kd.acoustic import load_acoustic_model
from asr_kd.acoustic.gmm import GmmAcousticModel
from asr_kd.decode import (
    DEFAULT_DECODER,
    DecodeConfig,
    Hypothesis,
    decode_marker,
    decoder_names,
    make_decoder,
    resolve_decoder,
)
from asr_kd.decode.lm_weight import (
    DEFAULT_PENALTIES,
    LmPoint,
    add_word_penalty,
    choose,
    lm_grid,
    read_choice,
)
from asr_kd.features import as_tensors
from asr_kd.hmm.model import GmmHmm
from asr_kd.hmm.sat import (
    FmllrConfig,
    apply_transforms,
    compose,
    estimate_transforms,
    fill_identity,
    silence_pdfs,
    write_transforms,
)
from asr_kd.score.frame_acc import frame_accuracy
from asr_kd.score.wer import SCORE_MAP_FILE, apply_score_map, compute_wer, read_score_map
from asr_kd.steps.common import load_dir_feats, read_alignments
from asr_kd.steps.graph import SILENCE_CSL
from asr_kd.utils.fst import read_fst, read_symbols
from asr_kd.utils.io import clear_done, mark_done, write_json, write_lines, write_text
from asr_kd.utils.progress import progress

log = logging.getLogger(__name__)


def run_decode(system: str, model_path, graph_dir, data_dir, out_dir, cfg: DecodeConfig,
               device, ali_dir=None, batch_size: int = 16,
               decoder: str = DEFAULT_DECODER, fmllr_estimates: int = 2,
               lm_weights: list[float] | None = None, penalties=DEFAULT_PENALTIES,
               lm_weight_from=None) -> dict:
    """Decode `data_dir` with the model at `model_path` over `graph_dir`'s HCLG into `out_dir`.
    A speaker-adapted GMM (tri3) is decoded as decode_fmllr.sh does: its test speakers'
    transforms come from `decode_fmllr_transforms` (`fmllr_estimates` of them, Kaldi's 2; on
    AN4 1 gave 4.53% WER, 2 4.27%, 3 4.27%) and go to `out_dir`/trans.{ark,scp}, the
    speaker-independent pass's WER and the fMLLR gains to scores.json's `fmllr`.

    The LM weight (asr_kd.decode.lm_weight): by default `cfg`'s acoustic scale alone. With
    `lm_weights`, every (weight, penalty) of the grid is searched (its WER in wer_<W>_<P>) and
    the best is this decode's (a dev set's choice). With `lm_weight_from`, a dev decode dir, its
    choice is this decode's. scores.json's `lm_tuning` has the point and the WER at `cfg`'s
    fixed weight beside it (`wer_fixed`)."""
    out_dir, graph_dir = Path(out_dir), Path(graph_dir)
    decoder = resolve_decoder(decoder, device)
    for name in decoder_names():
        clear_done(out_dir, decode_marker(name, device))
    d, feats = load_dir_feats(data_dir)
    ali = None
    if ali_dir is not None and (Path(ali_dir) / "ali.ark").exists():
        ali = read_alignments(ali_dir, d, feats)
    model = load_acoustic_model(model_path, device)
    hclg = read_fst(graph_dir / "HCLG.fst")
    search = make_decoder(decoder, hclg, cfg, device)
    fixed = LmPoint.of_scale(cfg.acoustic_scale)
    grid = lm_grid(lm_weights, penalties) if lm_weights else None
    chosen, chosen_on = fixed, None
    if grid is not None:
        chosen_on = str(data_dir)
    elif lm_weight_from is not None:
        chosen, chosen_on = read_choice(lm_weight_from)
    points = list(dict.fromkeys((grid or [chosen]) + [fixed]))
    searches = lm_searches(points, search, hclg, cfg, decoder, device)
    id2word = {i: w for w, i in read_symbols(graph_dir / "words.txt").items()}
    feats_t = as_tensors(feats)
    utts = d.utts
    fmllr = None
    if isinstance(model, GmmAcousticModel) and model.model.speaker_adapted:
        fmllr = decode_fmllr_transforms(model.model, Path(model_path), graph_dir, search, utts,
                                        feats_t, d.utt2spk, device, batch_size,
                                        num_estimates=fmllr_estimates)
        write_transforms(out_dir, fmllr.transforms)
        score = gmm_scorer(model.model, feats_t, fmllr.transforms, d.utt2spk)
    else:
        for name in ("trans.ark", "trans.scp"):  # a speaker-adapted model's, from before
            (out_dir / name).unlink(missing_ok=True)

        def score(batch):
            return model.scores([feats_t[u] for u in batch])
    found_at, preds, t_model, t_search = search_grid(score, searches, utts, batch_size,
                                                     f"decode {system}")
    score_map = graph_dir / SCORE_MAP_FILE
    mapping = read_score_map(score_map) if score_map.is_file() else None
    refs = d.text if mapping is None else apply_score_map(d.text, mapping)

    def words_of(found) -> dict[str, list[str]]:
        return {u: [id2word[w] for w in found[u].words] if found[u] is not None else []
                for u in utts}

    def wer_of(hyps):
        return compute_wer(refs, hyps if mapping is None else apply_score_map(hyps, mapping))

    hyps_at = {pt: words_of(found_at[pt]) for pt in points}
    wers = {pt: wer_of(hyps_at[pt]) for pt in points}
    for stale in out_dir.glob("wer_*_*"):  # a grid's, from before
        stale.unlink()
    if grid is not None:
        chosen = choose({pt: w.wer for pt, w in wers.items()}, grid, fixed)
        for pt in grid:
            write_text(out_dir / f"wer_{pt.name}", wers[pt].kaldi_line() + "\n")
        log.info("LM weight %g, word insertion penalty %g: the best of %d points (%.2f%% WER; "
                 "%.2f%% at the fixed weight %g)", chosen.lm_weight, chosen.penalty, len(grid),
                 wers[chosen].wer, wers[fixed].wer, fixed.lm_weight)
    found, wer, hyps = found_at[chosen], wers[chosen], hyps_at[chosen]
    failed = [u for u in utts if found[u] is None or not found[u].reached_final]
    if failed:
        log.warning("%d utterances reached no final state: %s", len(failed), " ".join(failed[:10]))
    if mapping is not None:
        write_lines(out_dir / "score_ref.txt", (" ".join([u] + refs[u]) for u in utts))
        write_lines(out_dir / "score_hyp.txt",
                    (" ".join([u] + s) for u, s in apply_score_map(hyps, mapping).items()))
    else:
        score_map = None
        for name in ("score_ref.txt", "score_hyp.txt"):
            (out_dir / name).unlink(missing_ok=True)
    frames = sum(len(p) for p in preds.values())
    acc = None if ali is None else frame_accuracy(preds, ali)[0]
    write_lines(out_dir / "hyp.txt", (" ".join([u] + hyps[u]) for u in utts))
    write_text(out_dir / "wer", wer.kaldi_line() + "\n" + wer.ser_line() + "\n")
    audio_s = frames * 0.01
    scores = {"system": system, "model": str(model_path), "data": str(data_dir),
              "graph": str(graph_dir),
              "wer": float(f"{wer.wer:.2f}"),  # as Kaldi's %WER line prints it
              "frame_acc": None if acc is None else round(acc, 4),
              "params": model.num_params,
              "flops_per_frame": model.flops_per_frame(next(iter(feats.values())).shape[1]),
              "hyp": str(out_dir / "hyp.txt"),
              "wer_detail": wer.to_dict(), "kaldi_line": wer.kaldi_line(),
              "score_map": None if score_map is None else str(score_map),
              "frames": frames, "model_seconds": round(t_model, 3),
              "search_seconds": round(t_search, 3),
              "search_rtfx": round(audio_s / t_search, 1) if t_search > 0 else None,
              "no_final_state": failed, "decoder": decoder, "config": cfg.__dict__,
              "lm_tuning": {"chosen": chosen.to_dict(),
                            "chosen_on": chosen_on,
                            "fixed": fixed.to_dict(),
                            "wer_fixed": float(f"{wers[fixed].wer:.2f}"),
                            "grid": None if grid is None
                            else {pt.name: float(f"{wers[pt].wer:.2f}") for pt in grid}}}
    if fmllr is not None:  # the speaker-independent pass and each fMLLR estimate before this one
        si_hyps = {u: [id2word[w] for w in fmllr.si_words[u]] for u in utts}
        si_wer = wer_of(si_hyps)
        scores["fmllr"] = {"si_wer": float(f"{si_wer.wer:.2f}"),
                           "si_kaldi_line": si_wer.kaldi_line(), "estimates": fmllr.estimates,
                           "seconds": round(fmllr.seconds, 3)}
    write_json(out_dir / "scores.json", scores)
    mark_done(out_dir, decode_marker(decoder))
    acc_s = "n/a" if acc is None else f"{acc:.2f}%"
    if fmllr is not None:
        print(f"{system} (speaker-independent first pass): {scores['fmllr']['si_kaldi_line']}")
    lm_s = ""
    if chosen_on is not None:
        lm_s = (f" at LM weight {chosen.lm_weight:g}, penalty {chosen.penalty:g} "
                f"(%WER {wers[fixed].wer:.2f} at the fixed weight {fixed.lm_weight:g})")
    print(f"{system}: {wer.kaldi_line()} frame_acc {acc_s}{lm_s}")
    return scores


# ----------------------------------------------------------------------------- passes

Scorer = Callable[[list[str]], list[tuple[torch.Tensor, torch.Tensor]]]


def search_all(score: Scorer, search, utts: list[str], batch_size: int, label: str,
               ) -> tuple[dict[str, Hypothesis | None], dict[str, np.ndarray], float, float]:
    """Decode `utts`, `batch_size` at a time: `score(batch)` gives per utterance (log-likelihoods
    for the search, scores for frame accuracy). Returns per utterance the best path (None: no
    path survived the beam) and the argmax pdf of every frame, and the seconds spent scoring
    and searching."""
    found, preds, t_model, t_search = search_grid(score, {None: search}, utts, batch_size, label)
    return found[None], preds, t_model, t_search


def search_grid(score: Scorer, searches: dict, utts: list[str], batch_size: int, label: str):
    """search_all with several searches (one per key of `searches`) over each batch's scores,
    scored once: the best paths come back per key. The seconds searching are the first
    search's, the decode's own cost."""
    found = {k: {} for k in searches}
    preds = {}
    t_model = t_search = 0.0
    for i in progress(range(0, len(utts), batch_size), label, unit="batches"):
        batch = utts[i:i + batch_size]
        t0 = time.time()
        scored = score(batch)
        t_model += time.time() - t0
        for n, (k, search) in enumerate(searches.items()):
            t0 = time.time()
            hyps = search.decode_batch([ll for ll, _ in scored])
            if n == 0:
                t_search += time.time() - t0
            found[k].update(zip(batch, hyps))
        for u, (_, cls) in zip(batch, scored):
            preds[u] = cls.argmax(-1).cpu().numpy()
    return found, preds, t_model, t_search


def lm_searches(points: list[LmPoint], search, hclg, cfg: DecodeConfig, decoder: str,
                device) -> dict[LmPoint, object]:
    """A search per grid point: `search` (over `hclg` at `cfg`) at each point's acoustic scale,
    over a copy of `hclg` with the point's word insertion penalty where it has one."""
    by_penalty = {0.0: search}
    for p in sorted({pt.penalty for pt in points} - {0.0}):
        by_penalty[p] = make_decoder(decoder, add_word_penalty(hclg, p), cfg, device)
    return {pt: by_penalty[pt.penalty].rescaled(pt.acoustic_scale) for pt in points}


def gmm_scorer(model: GmmHmm, feats: dict[str, torch.Tensor],
               transforms: dict[str, torch.Tensor] | None = None,
               spk_of_utt: dict[str, str] | None = None) -> Scorer:
    """A GMM's log-likelihoods (both for the search and for frame accuracy), on each
    utterance's speaker's fMLLR-adapted features when `transforms` are given."""
    def score(batch: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for u in batch:
            ll = model.log_likelihoods(
                feats[u], None if transforms is None else transforms[spk_of_utt[u]])
            out.append((ll, ll))
        return out
    return score


@dataclass
class FmllrPasses:
    transforms: dict[str, torch.Tensor]  # per speaker, [D, D+1] from the unadapted features
    si_words: dict[str, list[int]]  # the speaker-independent pass's word ids
    estimates: list[dict]  # asr_kd.hmm.sat.estimate_transforms' summary of each estimate
    seconds: float


def decode_fmllr_transforms(model: GmmHmm, model_path: Path, graph_dir: Path, search,
                            utts: list[str], feats: dict[str, torch.Tensor],
                            spk_of_utt: dict[str, str], device, batch_size: int = 16,
                            num_estimates: int = 2,
                            cfg: FmllrConfig | None = None) -> FmllrPasses:
    """The test speakers' fMLLR transforms for a SAT model, as Kaldi's decode_fmllr.sh finds
    them, before the final decode with `model` on the adapted features:

    1. decode with final.alimdl (beside `model_path`; train-sat writes it), the speaker-
       independent model of the SAT model's tree and Gaussians, on the unadapted features,
       over the same graph;
    2. fMLLR per speaker against `model` from the best path's pdfs (frames of silence pdfs,
       from `graph_dir`/phones/silence.csl, weighted by `cfg.silence_weight`, 0), with the
       Gaussian posteriors of final.alimdl (gmm-post-to-gpost | gmm-est-fmllr-gpost).
       Kaldi takes lattice posteriors; the one best path is what our decoders return;
    3. for each further estimate (`num_estimates` 2: decode_fmllr.sh's final transforms),
       decode with `model` on the adapted features and estimate once more from that path,
       composed onto the transforms so far. Kaldi applies its final transforms by rescoring
       the lattice; the caller decodes again instead.

    With the caller's final decode, `num_estimates` + 1 searches in all."""
    cfg = cfg or FmllrConfig()
    t0 = time.time()
    alimdl_path = model_path.parent / "final.alimdl"
    if not alimdl_path.is_file():
        raise FileNotFoundError(f"{alimdl_path}: a speaker-adapted model decodes its first pass "
                                "with final.alimdl beside it (asr-kd train-sat writes it)")
    csl = graph_dir / SILENCE_CSL
    if not csl.is_file():
        raise FileNotFoundError(f"{csl}: fMLLR needs the silence phones (make-graph writes "
                                "them): make the graph again")
    silence = [int(p) for p in csl.read_text().strip().split(":") if p]
    alimdl = GmmHmm.load(alimdl_path, device)
    sil = silence_pdfs(model.tm, silence)
    sifeats = {u: model.feature.apply(feats[u].to(device)) for u in utts}  # [T, D]
    dim = model.gmm.means.shape[-1]

    def best_paths(found) -> dict[str, np.ndarray]:
        return {u: h.pdf_alignment for u, h in found.items()
                if h is not None and len(h.pdf_alignment) == sifeats[u].shape[0]}

    found, _, _, _ = search_all(gmm_scorer(alimdl, feats), search, utts, batch_size,
                                "decode: speaker-independent pass")
    si_words = {u: [] if h is None else list(h.words) for u, h in found.items()}
    w, first = estimate_transforms(model.gmm, sifeats, best_paths(found), spk_of_utt, sil, cfg,
                                   device, post_gmm=alimdl.gmm, post_feats=sifeats)
    w = fill_identity(w, {spk_of_utt[u] for u in utts}, dim, "no first-pass path")
    estimates = [first]
    for _ in range(num_estimates - 1):
        found, _, _, _ = search_all(gmm_scorer(model, feats, w, spk_of_utt), search, utts,
                                    batch_size, "decode: speaker-adapted pass")
        adapted = apply_transforms(sifeats, w, spk_of_utt)
        w2, more = estimate_transforms(model.gmm, adapted, best_paths(found), spk_of_utt, sil,
                                       cfg, device)
        w = {s: compose(w2[s], w[s]) if s in w2 else w[s] for s in w}
        estimates.append(more)
    log.info("fMLLR of %d speakers: auxf gain %s per frame", len(w),
             " then ".join(f"{e['auxf_gain']:.4f}" for e in estimates))
    return FmllrPasses(w, si_words, estimates, time.time() - t0)
