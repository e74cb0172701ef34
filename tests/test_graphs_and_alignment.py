"""Our graph builder and aligner against Kaldi's own machinery (kaldifst / kaldi-decoder),
on the yesno recipe's real model and features."""

from __future__ import annotations

import itertools

import kaldi_decoder
import kaldifst
import numpy as np
import torch

from asr_kd.decode import DecodeConfig, ReferenceDecoder
from asr_kd.decode.graph import GraphConfig, make_hclg
from asr_kd.hmm.align import equal_align, viterbi_align
from asr_kd.hmm.h_fst import training_h
from asr_kd.hmm.model import GmmHmm
from asr_kd.hmm.train_mono import compile_graphs
from asr_kd.lang import load_lang
from asr_kd.steps.common import load_dir_feats
from asr_kd.utils.fst import FstArrays, compile_text, from_arrays, to_arrays


def _setup(rdir):
    lang = load_lang(rdir / "data/lang")
    model = GmmHmm.load(rdir / "exp/mono/final.mdl")
    return lang, model


def plain_hclg(lang, model) -> kaldifst.StdVectorFst:
    """H∘C∘L∘G composed and nothing else, with pdf + 1 inputs and the transition weights
    make_hclg uses (transition scale 1, self-loop scale 0.1)."""
    L = lang.L()
    kaldifst.arcsort(L, sort_type="olabel")
    CLG, windows = model.ctx.compose(kaldifst.compose(L, lang.G()))
    kaldifst.arcsort(CLG, sort_type="ilabel")
    H = to_arrays(compile_text(training_h(model.tm, model.ctx, windows)))
    lp = model.tm.scaled_log_probs(1.0, 0.1)
    emit = H.ilabel > 0
    H.weight[emit] = -lp[H.ilabel[emit]]
    Hf = from_arrays(H)
    kaldifst.arcsort(Hf, sort_type="olabel")
    HCLG = to_arrays(kaldifst.compose(Hf, CLG))
    e = HCLG.ilabel > 0
    HCLG.ilabel[e] = model.tm.tid2pdf[HCLG.ilabel[e]] + 1
    return from_arrays(HCLG)


def assert_same_best_paths(lang, model, data_dir, utts) -> None:
    """HCLG (determinized, minimized, self-loops added afterwards) must score every utterance's
    best path exactly like the plain composition H∘C∘L∘G with the same transition weights."""
    wide = DecodeConfig(beam=500.0, max_active=1_000_000)
    plain = ReferenceDecoder(plain_hclg(lang, model), wide)
    ours = ReferenceDecoder(make_hclg(lang, model.tm, GraphConfig(), model.ctx), wide)
    d, feats = load_dir_feats(data_dir)
    for utt in d.utts[:utts]:
        ll = model.log_likelihoods(torch.from_numpy(feats[utt])).numpy()
        (a,), (b,) = plain.decode_batch([ll]), ours.decode_batch([ll])
        assert a.words == b.words, utt
        assert abs(a.cost - b.cost) < 1e-5 * abs(a.cost), (utt, a.cost, b.cost)


def test_hclg_best_paths_equal_the_undeterminized_graph(yesno_run, monkeypatch):
    rdir, _ = yesno_run
    monkeypatch.chdir(rdir)
    lang, model = _setup(rdir)
    assert_same_best_paths(lang, model, "data/test_yesno", 10)


def _viterbi_inputs(rdir, n):
    """Training graphs, scaled log-likelihoods and transition weights of n train utterances."""
    lang, model = _setup(rdir)
    d, feats = load_dir_feats("data/train_yesno")
    utts = d.utts[:n]
    graphs = compile_graphs(lang, model.tm, {u: d.text[u] for u in utts}, "text")
    lls = [model.log_likelihoods(torch.from_numpy(feats[u])) * 0.1 for u in utts]
    tid_lp = torch.from_numpy(model.tm.scaled_log_probs(1.0, 0.1))
    tid2pdf = torch.from_numpy(model.tm.tid2pdf).clamp_min(0)
    return model, utts, graphs, lls, tid_lp, tid2pdf


def test_batched_viterbi_equals_kaldi_decoder_on_training_graphs(yesno_run, monkeypatch):
    rdir, _ = yesno_run
    monkeypatch.chdir(rdir)
    model, utts, graphs, lls, tid_lp, tid2pdf = _viterbi_inputs(rdir, 6)
    paths, scores = viterbi_align([graphs[u] for u in utts], lls, tid_lp, tid2pdf)
    for u, ll, path, score in zip(utts, lls, paths, scores):
        g = graphs[u]
        ref_graph = FstArrays(g.num_states, g.start, g.src, g.dst, model.tm.tid2pdf[g.ilabel] + 1,
                              g.ilabel, (g.weight - tid_lp.numpy()[g.ilabel]).astype(np.float32),
                              g.final)
        dec = ReferenceDecoder(from_arrays(ref_graph), DecodeConfig(acoustic_scale=1.0,
                                                                    beam=1000.0,
                                                                    max_active=1_000_000))
        dec.decoder.decode(kaldi_decoder.DecodableCtc(ll.numpy()))
        ok, lat = dec.decoder.get_best_path()
        ok, _, tids, w = kaldifst.get_linear_symbol_sequence(lat)
        assert ok
        assert abs(-(w.value1 + w.value2) - score) < 1e-3 * abs(score)
        assert len(path) == ll.shape[0]
        ref_phones = [k for k, _ in itertools.groupby(model.tm.tid2phone[np.array(tids)])]
        our_phones = [k for k, _ in itertools.groupby(model.tm.tid2phone[path])]
        assert our_phones == ref_phones


def test_viterbi_batches_of_different_lengths_agree_with_single(yesno_run, monkeypatch):
    rdir, _ = yesno_run
    monkeypatch.chdir(rdir)
    _, utts, graphs, lls, tid_lp, tid2pdf = _viterbi_inputs(rdir, 5)
    assert len({x.shape[0] for x in lls}) > 1
    batch, _ = viterbi_align([graphs[u] for u in utts], lls, tid_lp, tid2pdf)
    for u, ll, p in zip(utts, lls, batch):
        single, _ = viterbi_align([graphs[u]], [ll], tid_lp, tid2pdf)
        assert np.array_equal(single[0], p)


def test_too_short_utterance_has_no_path(yesno_run):
    rdir, _ = yesno_run
    lang, model = _setup(rdir)
    g = compile_graphs(lang, model.tm, {"u": ["YES", "NO", "YES"]}, "text")["u"]
    ll = torch.zeros(5, model.num_pdfs)  # 5 frames cannot hold 9 HMM states
    tid_lp = torch.from_numpy(model.tm.scaled_log_probs(1.0, 0.1))
    paths, _ = viterbi_align([g], [ll], tid_lp, torch.from_numpy(model.tm.tid2pdf).clamp_min(0))
    assert paths == [None]
    sil = lang.optional_silence
    assert equal_align(model.tm, [sil, lang.phones["Y"], sil], 12) is None  # 13 states do not fit
    ali = equal_align(model.tm, [sil, lang.phones["Y"], sil], 26)
    assert len(ali) == 26 and model.tm.tid2phone[ali[0]] == sil


def test_hclg_resumes_from_the_steps_a_stopped_build_kept(yesno_run, tmp_path, caplog):
    """A build stopped after LG (its LG.fst and stamp left in the work dir, as a killed run
    leaves them) reads LG back and makes the same graph; a stamp of other inputs starts
    afresh; a finished build removes its steps."""
    import logging

    from asr_kd.decode.graph import inputs_stamp, make_lg

    rdir, _ = yesno_run
    lang, model = _setup(rdir)
    fresh = make_hclg(lang, model.tm, GraphConfig(), model.ctx).to_str(show_weight_one=True)
    work = tmp_path / "steps"
    work.mkdir()
    (work / "stamp").write_text(inputs_stamp(lang, model.tm, model.ctx, GraphConfig()) + "\n")
    make_lg(lang).write(str(work / "LG.fst"))
    with caplog.at_level(logging.INFO, logger="asr_kd.decode.graph"):
        resumed = make_hclg(lang, model.tm, GraphConfig(), model.ctx, work_dir=work)
    assert resumed.to_str(show_weight_one=True) == fresh
    assert f"graph: LG read back from {work / 'LG.fst'}" in caplog.text
    assert "graph: CLG made in" in caplog.text
    assert not work.exists()

    work.mkdir()
    (work / "stamp").write_text("of another lang\n")
    kaldifst.compile("0 1 5 5 0\n1\n").write(str(work / "LG.fst"))  # not this lang's LG
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="asr_kd.decode.graph"):
        again = make_hclg(lang, model.tm, GraphConfig(), model.ctx, work_dir=work)
    assert again.to_str(show_weight_one=True) == fresh
    assert "graph: LG made in" in caplog.text
