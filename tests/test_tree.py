"""Decision-tree state tying on the real yesno audio: statistics from the recipe's monophone
alignments, the tree's leaf count and minimum count, likelihood gains, determinism, and a
triphone system trained on it that still aligns and decodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asr_kd.features import as_tensors
from asr_kd.hmm.context import ContextDependency
from asr_kd.hmm.model import GmmHmm
from asr_kd.hmm.tree import (
    TreeConfig,
    accumulate_tree_stats,
    build_tree,
    cluster_phones,
    gauss_loglik,
    leaf_stats,
)
from asr_kd.lang import load_lang
from asr_kd.steps.common import load_dir_feats, read_int_vectors


@pytest.fixture(scope="module")
def yesno_stats(yesno_run):
    rdir, _ = yesno_run
    lang = load_lang(rdir / "data/lang")
    mono = GmmHmm.load(rdir / "exp/mono/final.mdl")
    alis = read_int_vectors(rdir / "exp/mono_ali_train_yesno/tid.ark")
    with pytest.MonkeyPatch.context() as mp:  # feats.scp paths are relative to the recipe
        mp.chdir(rdir)
        _, feats = load_dir_feats("data/train_yesno")
    gfeats = {u: mono.feature.apply(x) for u, x in as_tensors(feats).items() if u in alis}
    stats = accumulate_tree_stats(mono.tm, alis, gfeats, ci_phones=lang.silence_phones)
    return lang, mono, stats, sum(len(a) for a in alis.values())


def _tree(lang, stats, **kw):
    cfg = TreeConfig(**kw)
    return build_tree(stats, lang.topo, cluster_phones(stats, lang.topo, lang.silence_phones,
                                                       cfg), cfg), cfg


def _leaf_loglik(ctx, stats, var_floor):
    count, sx, sxx = leaf_stats(ctx, stats)
    return count, gauss_loglik(count, sx, sxx, var_floor).sum()


def test_stats_cover_every_aligned_frame(yesno_stats):
    lang, mono, stats, frames = yesno_stats
    assert stats.count.sum() == frames
    # every window's centre is a real phone; its neighbours a phone or 0 (utterance ends)
    sil, y, n = (lang.phones[p] for p in ("SIL", "Y", "N"))
    assert set(stats.windows[:, 1]) == {sil, y, n}
    # silence is context-independent: one all-zero context per pdf class
    is_sil = stats.windows[:, 1] == sil
    assert (stats.windows[is_sil][:, [0, 2]] == 0).all() and is_sil.sum() == 5
    # words sit between words and silence, never at an utterance's end (0): files start and end
    # in silence
    words = stats.windows[~is_sil]
    assert sil in set(words[:, 0]) <= {sil, y, n} and sil in set(words[:, 2]) <= {sil, y, n}


def test_leaf_count_min_count_and_gain(yesno_stats):
    lang, _, stats, _ = yesno_stats
    roots = sum(lang.topo.num_pdf_classes(p) for p in lang.topo.phones)
    mono_ctx, _ = _tree(lang, stats, num_leaves=roots)
    # yesno's words have 18 seen contexts (6 roots): 6 more leaves at most with 20 frames each
    for target in (roots + 2, roots + 6):
        ctx, cfg = _tree(lang, stats, num_leaves=target, min_count=20, min_gain=0)
        assert ctx.num_leaves == target
        assert ctx.num_pdfs == ctx.num_leaves  # pdf ids 0..L-1, each a leaf
        count, ll = _leaf_loglik(ctx, stats, cfg.var_floor)
        assert count.min() >= cfg.min_count
        # every split was a gain: the tied model fits the frames better than the monophones
        _, mono_ll = _leaf_loglik(mono_ctx, stats, cfg.var_floor)
        assert ll > mono_ll
    # a minimum count nothing can satisfy leaves the monophone tree
    ctx, _ = _tree(lang, stats, num_leaves=roots + 12, min_count=1e9)
    assert ctx.num_leaves == roots


def test_every_split_increases_likelihood(yesno_stats):
    lang, _, stats, _ = yesno_stats
    roots = sum(lang.topo.num_pdf_classes(p) for p in lang.topo.phones)
    previous = None
    for n in range(roots, roots + 7):
        ctx, cfg = _tree(lang, stats, num_leaves=n, min_count=20, min_gain=0)
        _, ll = _leaf_loglik(ctx, stats, cfg.var_floor)
        if previous is not None:
            assert ll > previous
        previous = ll


def test_same_seed_same_tree(yesno_stats):
    lang, _, stats, _ = yesno_stats
    a, _ = _tree(lang, stats, num_leaves=20, min_count=20, seed=3)
    b, _ = _tree(lang, stats, num_leaves=20, min_count=20, seed=3)
    assert a.to_json() == b.to_json()
    again = ContextDependency.from_json(a.to_json())
    windows = stats.windows.tolist()
    assert [again.pdf(w, k) for w, k in zip(windows, stats.pdf_class.tolist())] == \
        [a.pdf(w, k) for w, k in zip(windows, stats.pdf_class.tolist())]


def test_tree_errors(yesno_stats):
    lang, _, stats, _ = yesno_stats
    ctx, _ = _tree(lang, stats, num_leaves=20, min_count=20)
    with pytest.raises(KeyError, match="the tree has no root for phone 99 pdf class 0"):
        ctx.pdf((1, 99, 1), 0)
    with pytest.raises(ValueError, match="tree statistics have windows of 3 phones, the tree "
                                         "wants 5"):
        build_tree(stats, lang.topo, [], TreeConfig(context_width=5, central_position=2))
    tm_tuples = ctx.tuples(lang.topo)
    with pytest.raises(ValueError, match="has several pdfs: the model is context-dependent"):
        ContextDependency.from_transitions(lang.topo, tm_tuples)
    assert np.unique([t[2] for t in tm_tuples]).size == ctx.num_pdfs


def test_triphone_system_on_yesno(yesno_stats, yesno_run, monkeypatch):
    """A small tied-triphone GMM trained from the monophone alignments: its tree reaches the
    leaf target, its HCLG (C from kaldifst.compose_context) finds the plain H∘C∘L∘G's best
    paths, and it decodes test_yesno."""
    from asr_kd.decode import DecodeConfig, ReferenceDecoder
    from asr_kd.decode.graph import GraphConfig, make_hclg
    from asr_kd.hmm.train_tri import TriConfig, train_tri
    from asr_kd.score.wer import compute_wer
    from tests.test_graphs_and_alignment import assert_same_best_paths

    lang, mono, _, _ = yesno_stats
    rdir, _ = yesno_run
    monkeypatch.chdir(rdir)
    d, feats = load_dir_feats("data/train_yesno")
    alis = read_int_vectors("exp/mono_ali_train_yesno/tid.ark")
    cfg = TriConfig(num_iters=10, max_iter_inc=6, total_gauss=100, realign_iters=[5],
                    tree=TreeConfig(num_leaves=16, min_count=20, min_gain=0))
    tri = train_tri(lang, as_tensors(feats), d.text, mono, alis, cfg, torch.device("cpu"))
    assert tri.ctx.width == 3 and tri.num_pdfs == 16
    assert_same_best_paths(lang, tri, "data/test_yesno", 6)

    dec = ReferenceDecoder(make_hclg(lang, tri.tm, GraphConfig(), tri.ctx), DecodeConfig())
    test, test_feats = load_dir_feats("data/test_yesno")
    id2word = lang.id2word
    found = dec.decode_batch([tri.log_likelihoods(torch.from_numpy(test_feats[u]))
                              for u in test.utts])
    hyps = {u: [id2word[w] for w in h.words] for u, h in zip(test.utts, found)}
    # Every training file starts with NO and every test file with YES, so the few contexts yesno
    # has teach little: at most 3 insertions (the monophone system's 1 plus 2 in the noisy
    # starts of 1_1_0_1_1_1_1_0 and 1_1_1_1_1_0_0_0), and no word is lost or confused.
    r = compute_wer(test.text, hyps)
    assert r.subs == 0 and r.dels == 0 and r.ins <= 3, r.kaldi_line()
