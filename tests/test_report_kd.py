"""The report's distillation figures, from small experiment dirs written by hand: kept per
system against its own group's hard-target student, kept over seeds (and when it is not
claimed), the paired bootstrap against a plain numpy computation, and several test sets with
their OOV rate and LM perplexity.

The runs follow the students' run.json contract: settings.variant hard, kd or kdt, `group` the
student's shape; stage 7's runs have role student, stage 14's role seed. The hypotheses are
built from chosen error counts: utterance u's reference words, the first e of them replaced by
"zz" (a substitution each), so the errors are known without scoring anything."""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pytest

from asr_kd.cli import build_parser, main
from asr_kd.lang.ngram import train_kneser_ney
from asr_kd.score.bootstrap import paired_bootstrap
from asr_kd.score.lm import ArpaLM, oov_rate
from asr_kd.score.report import make_report
from asr_kd.utils.runinfo import write_run

VOCAB = ["a", "b", "c", "d", "e", "f"]
# 12 test utterances of 3 to 6 words, and 8 of another test set with words the lexicon lacks
TEST = {f"u{i:02d}": [VOCAB[(i + j) % 6] for j in range(3 + i % 4)] for i in range(12)}
UNSEEN = {f"v{i}": [VOCAB[i % 6], "qq" if i % 3 == 0 else VOCAB[(i + 2) % 6], VOCAB[(i + 4) % 6]]
          for i in range(8)}
LM_TRAIN = [["a", "b", "c"], ["b", "c", "d"], ["c", "d", "e", "f"], ["a", "c", "e"],
            ["f", "e", "d", "c"], ["b", "a"]]

# Errors per test utterance (u00..u11) of each run on `test`.
ERRS = {
    "student_hard": [0, 1, 2, 0, 1, 0, 3, 1, 0, 2, 1, 0],
    "student_kd": [0, 0, 2, 0, 1, 0, 2, 1, 0, 1, 1, 0],
    "student_kdt": [0, 1, 1, 0, 0, 0, 2, 0, 0, 1, 1, 0],
    "student_hard_s101": [1, 1, 2, 0, 0, 0, 3, 2, 0, 2, 1, 1],
    "student_kd_s101": [1, 0, 1, 0, 0, 1, 3, 1, 0, 1, 1, 0],
    "student_kdt_s101": [0, 0, 1, 0, 0, 0, 3, 1, 0, 2, 0, 0],
    "student_hard_s102": [0, 1, 1, 1, 1, 0, 2, 1, 0, 2, 1, 0],
    "student_kd_s102": [0, 1, 1, 1, 0, 0, 2, 1, 1, 2, 0, 0],
    "hard_s103": [1, 0, 2, 0, 1, 1, 3, 1, 0, 2, 1, 1],
    "kd_s103": [0, 0, 2, 0, 1, 0, 3, 0, 0, 2, 1, 1],
    "student_big_hard": [0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0],
    "student_big_kd": [0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0],
}


def _hyps(refs: dict, errs: list[int]) -> dict:
    return {u: ["zz"] * e + refs[u][e:] for u, e in zip(sorted(refs), errs)}


def _decode(recipe, run_dir, test_set, refs, errs, acc):
    d = run_dir / f"decode_{test_set}"
    d.mkdir(parents=True)
    (d / "hyp.txt").write_text("".join(" ".join([u, *h]) + "\n"
                                       for u, h in _hyps(refs, errs).items()))
    words, errors = sum(len(r) for r in refs.values()), sum(errs)
    wer = round(100 * errors / words, 2)
    (d / "scores.json").write_text(json.dumps({
        "system": run_dir.name, "data": f"data/{test_set}", "wer": wer, "frame_acc": acc,
        "params": 1000, "flops_per_frame": 2000, "hyp": str((d / "hyp.txt").relative_to(recipe)),
        "wer_detail": {"words": words, "ins": 0, "dels": 0, "subs": errors, "errors": errors},
        "kaldi_line": f"%WER {wer:.2f} [ {errors} / {words}, 0 ins, 0 del, {errors} sub ]",
        "score_map": None, "frames": 1000, "model_seconds": 0.25, "search_seconds": 0.25,
        "search_rtfx": 40.0}))


def _run(recipe, rel, role, acc, errs, settings=None, unseen=None, **fields):
    """exp/rel: run.json, and its decode of `test` (and of `test_unseen`: (errors, acc))."""
    d = recipe / "exp" / rel
    d.mkdir(parents=True)
    write_run(d, role, settings or {}, **fields)
    _decode(recipe, d, "test", TEST, errs, acc)
    if unseen is not None:
        _decode(recipe, d, "test_unseen", UNSEEN, *unseen)


def _student(recipe, rel, variant, acc, seed, group="student", role="student", old=False,
             unseen=None):
    settings = {"targets": "hard" if variant == "hard" else "soft",
                "alpha": 0.0 if variant == "hard" else 0.5, "temperature": 2.0, "seed": seed}
    if not old:  # runs written before variants existed have none
        settings.update(variant=variant, transfer=["data/extra"] if variant == "kdt" else [],
                        transfer_weight=0.5 if variant == "kdt" else None)
    name = rel.split("/")[-1]
    _run(recipe, rel, role, acc, ERRS[name], settings, unseen=unseen, group=group, seed=seed)


@pytest.fixture
def recipe(tmp_path):
    for name, texts in (("test", TEST), ("test_unseen", UNSEEN)):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "text").write_text(
            "".join(" ".join([u, *t]) + "\n" for u, t in sorted(texts.items())))
    (tmp_path / "data" / "lang").mkdir()
    (tmp_path / "data" / "lang" / "words.txt").write_text("".join(
        f"{w} {i}\n" for i, w in enumerate(["<eps>", *VOCAB, "#0", "<s>", "</s>"])))
    (tmp_path / "data" / "local").mkdir()
    (tmp_path / "data" / "local" / "lm.arpa").write_text(
        train_kneser_ney(LM_TRAIN, order=2, vocab=VOCAB).to_arpa())

    zero = [0] * 8
    _run(tmp_path, "ensemble", "ensemble", 70.0, [0] * 12, unseen=(zero, 50.0))
    _student(tmp_path, "student_hard", "hard", 60.0, 100, unseen=([1, 0, 1, 1, 0, 1, 0, 2], 40.0))
    _student(tmp_path, "student_kd", "kd", 65.0, 100, unseen=([1, 0, 0, 1, 0, 0, 0, 1], 41.0))
    _student(tmp_path, "student_kdt", "kdt", 66.0, 100)
    _student(tmp_path, "student_big_hard", "hard", 69.5, 100, group="student_big")
    _student(tmp_path, "student_big_kd", "kd", 69.8, 100, group="student_big")
    for seed, accs in ((101, (61.0, 63.0, 64.0)), (102, (62.0, 62.5, None))):
        for variant, acc in zip(("hard", "kd", "kdt"), accs):
            if acc is not None:
                _student(tmp_path, f"seeds/student_{variant}_s{seed}", variant, acc, seed,
                         role="seed", unseen=(zero, 42.0) if seed == 101 else None)
    # An old stage 14 pair (no variant: hard and soft targets), and an unpaired seed run.
    _student(tmp_path, "seeds/hard_s103", "hard", 60.5, 103, role="seed", old=True)
    _student(tmp_path, "seeds/kd_s103", "kd", 64.0, 103, role="seed", old=True)
    _run(tmp_path, "seeds/big_kd_s101", "seed", 69.0, [0] * 12,
         {"targets": "soft", "variant": "kd", "seed": 101}, group="student_big", seed=101)
    return tmp_path


def test_kept_per_system_against_its_own_group(recipe):
    out = make_report(recipe / "exp", "toy", "test", recipe_dir=recipe)
    res, md = out["results"], out["markdown"]
    assert list(res["systems"]) == ["ensemble", "student_hard", "student_kd", "student_kdt",
                                    "student_big_hard", "student_big_kd"]
    # By hand: (65 - 60) / (70 - 60), (66 - 60) / (70 - 60), (69.8 - 69.5) / (70 - 69.5).
    assert res["kept"] == 0.5
    assert res["kept_by_system"] == {"student_kd": 0.5, "student_kdt": 0.6,
                                     "student_big_kd": 0.6}
    assert "kept_by_student" not in res and "seeds" not in res
    # 1000 frames of 10 ms decoded in 0.25 + 0.25 s: 20 RTFx (in RESULTS.md only: results.json
    # holds no timings, so that equal runs give equal files).
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in md.splitlines()
            if line.startswith("| student")}
    assert rows["student_kd"][-1] == "0.50 |" and rows["student_kdt"][-1] == "0.60 |"
    assert rows["student_hard"][-1] == "- |" and rows["student_kd"][-3] == "20"
    assert rows["student_big_kd"][-1] == "0.60 (not claimed) |"
    assert ("kept = (student_kdt - student_hard) / (ensemble - student_hard) in frame accuracy "
            "= **0.60**") in md


def test_kept_over_seeds(recipe):
    res = make_report(recipe / "exp", "toy", "test", recipe_dir=recipe)["results"]
    ks = res["kept_seeds"]
    assert list(ks) == ["student_kd", "student_kdt", "student_big_kd"]
    kd = ks["student_kd"]
    # Stage 7's pair (seed 100), the seed runs' 101 and 102, the old pair 103.
    assert kd["seeds"] == [100, 101, 102, 103] and kd["vs"] == "student_hard"
    assert kd["acc"] == [65.0, 63.0, 62.5, 64.0]
    assert kd["hard_acc"] == [60.0, 61.0, 62.0, 60.5]
    by_hand = [(65 - 60) / 10, (63 - 61) / 9, (62.5 - 62) / 8, (64 - 60.5) / 9.5]
    assert kd["kept"] == [round(k, 4) for k in by_hand]
    assert kd["kept_mean"] == pytest.approx(statistics.fmean(by_hand), abs=1e-4)
    assert kd["kept_sd"] == pytest.approx(statistics.stdev(by_hand), abs=1e-4)
    assert kd["gain"] == pytest.approx(70 - 60.875)
    assert kd["kept_of_means"] == pytest.approx((63.625 - 60.875) / (70 - 60.875), abs=1e-4)
    assert kd["claimed"] is True
    assert kd["wer"][0] == res["systems"]["student_kd"]["wer"]
    assert kd["hard_wer"][1] == round(100 * sum(ERRS["student_hard_s101"]) / 54, 2)
    kdt = ks["student_kdt"]  # no kdt run of seed 102 or 103
    assert kdt["seeds"] == [100, 101] and kdt["kept"] == [0.6, round(3 / 9, 4)]
    assert kdt["kept_of_means"] == pytest.approx((65 - 60.5) / (70 - 60.5), abs=1e-4)
    # The big student has no hard-target seed 101: its kd seed 101 is left out.
    assert ks["student_big_kd"]["seeds"] == [100]


def test_kept_not_claimed_under_one_point(recipe):
    out = make_report(recipe / "exp", "toy", "test", recipe_dir=recipe)
    big = out["results"]["kept_seeds"]["student_big_kd"]
    assert big["gain"] == pytest.approx(0.5) and big["claimed"] is False
    assert big["kept"] == [0.6]  # still computed, not claimed
    md = out["markdown"]
    section = md[md.index("### student_big_kd against student_big_hard"):]
    section = section[:section.index("\n## ")]
    assert ("The ensemble's gain over student_big_hard is 0.50 points, under 1: kept is not "
            "claimed") in section
    assert "| seed | student_big_hard acc % | student_big_kd acc % | student_big_hard WER % |" \
           in section and "kept:" not in section
    claimed = md[md.index("### student_kd against student_hard"):]
    assert "| seed | student_hard acc % | student_kd acc % | kept |" in claimed
    assert "| 101 | 61.00 | 63.00 | 0.22 |" in claimed
    assert "| mean | 60.88 | 63.62 | 0.29 |" in claimed


def _plain_bootstrap(kd: list[list[int]], hard: list[list[int]], words: list[int]):
    """The significance test as the report documents it, written out plainly."""
    k, n = len(kd), len(words)
    rng = np.random.default_rng(0)
    stats = []
    for _ in range(1000):
        idx = rng.integers(0, n, size=n)
        e_kd = sum(kd[s][u] for s in range(k) for u in idx)
        e_hard = sum(hard[s][u] for s in range(k) for u in idx)
        w = sum(words[u] for u in idx)
        stats.append((e_kd - e_hard) / (k * w) * 100)
    observed = (sum(map(sum, kd)) - sum(map(sum, hard))) / (k * sum(words)) * 100
    lo, hi = np.percentile(stats, [2.5, 97.5])
    wins = sum(1.0 if s < 0 else 0.5 if s == 0 else 0.0 for s in stats) / len(stats)
    return observed, lo, hi, wins


def test_bootstrap_agrees_with_a_plain_computation(recipe):
    res = make_report(recipe / "exp", "toy", "test", recipe_dir=recipe)["results"]
    sig = res["significance"]
    assert list(sig) == ["student_kd", "student_kdt", "student_big_kd"]
    words = [len(TEST[u]) for u in sorted(TEST)]
    pairs = {"student_kd": [("student_kd", "student_hard"),
                            ("student_kd_s101", "student_hard_s101"),
                            ("student_kd_s102", "student_hard_s102"), ("kd_s103", "hard_s103")],
             "student_kdt": [("student_kdt", "student_hard"),
                             ("student_kdt_s101", "student_hard_s101")],
             "student_big_kd": [("student_big_kd", "student_big_hard")]}
    for system, runs in pairs.items():
        s = sig[system]
        observed, lo, hi, wins = _plain_bootstrap([ERRS[a] for a, _ in runs],
                                                  [ERRS[b] for _, b in runs], words)
        assert s["seeds"] == res["kept_seeds"][system]["seeds"]
        assert s["resamples"] == 1000 and s["utterances"] == 12
        assert s["wer_diff"] == pytest.approx(observed, abs=1e-4)
        assert s["ci95"] == pytest.approx([lo, hi], abs=1e-4)
        assert s["p_win"] == pytest.approx(wins, abs=1e-4)
        assert lo <= observed <= hi
    # student_kd: 8 errors against 11, 9 against 13, 9 against 10, 10 against 13 (of 54 words).
    assert sig["student_kd"]["wer_diff"] == pytest.approx((36 - 47) / (4 * 54) * 100, abs=1e-4)
    assert sig["student_kd"]["vs"] == "student_hard"
    md = make_report(recipe / "exp", "toy", "test", recipe_dir=recipe)["markdown"]
    assert "| test | student_kd | student_hard | 100, 101, 102, 103 | 12 | -5.09 |" in md


def test_bootstrap_ties_count_half():
    same = [[1, 0, 2], [0, 1, 1]]
    out = paired_bootstrap(same, same, [3, 4, 5])
    assert out["wer_diff"] == 0 and out["ci95"] == [0, 0] and out["p_win"] == 0.5
    with pytest.raises(ValueError, match="do not match"):
        paired_bootstrap([[1, 2]], [[1, 2, 3]], [1, 2])


def _perplexity_by_backoff(texts):
    """NgramLM's own scoring of the texts, its OOV tokens skipped (and kept in the history)."""
    lm = train_kneser_ney(LM_TRAIN, order=2, vocab=VOCAB)
    total = n = 0
    for t in texts:
        toks = ["<s>", *t, "</s>"]
        for i in range(1, len(toks)):
            if toks[i] in VOCAB or toks[i] == "</s>":
                total += lm.logprob(toks[i], toks[:i])
                n += 1
    return 10 ** (-total / n), lm


def test_two_test_sets(recipe):
    out = make_report(recipe / "exp", "toy", ["test", "test_unseen"], recipe_dir=recipe)
    res, md = out["results"], out["markdown"]
    assert res["test_set"] == "test" and list(res["test_sets"]) == ["test", "test_unseen"]
    main_, unseen = res["test_sets"]["test"], res["test_sets"]["test_unseen"]
    # The primary test set's figures are the top level's too.
    assert main_["kept_seeds"] == res["kept_seeds"]
    assert main_["significance"] == res["significance"]
    assert {n: s["wer"] for n, s in main_["systems"].items()} == {
        n: s["wer"] for n, s in res["systems"].items()}
    assert list(unseen["systems"]) == ["ensemble", "student_hard", "student_kd"]
    assert unseen["systems"]["student_kd"] == {
        "wer": round(100 * 3 / 24, 2), "frame_acc": 41.0,
        "hyp": "exp/student_kd/decode_test_unseen/hyp.txt"}
    # qq in v0, v3, v6: 3 of 24 tokens; test has none.
    assert unseen["oov_rate"] == 0.125 and main_["oov_rate"] == 0.0
    ppl, lm = _perplexity_by_backoff(UNSEEN.values())
    assert unseen["perplexity"] == pytest.approx(ppl, abs=0.01)
    assert main_["perplexity"] == pytest.approx(lm.perplexity(TEST.values()), abs=0.01)
    # On test_unseen only stage 7's pair and seed 101's are decoded.
    ks = unseen["kept_seeds"]
    assert list(ks) == ["student_kd"] and ks["student_kd"]["seeds"] == [100, 101]
    assert ks["student_kd"]["kept"] == [round(1 / 10, 4), 0.0]
    assert ks["student_kd"]["gain"] == pytest.approx(50 - 41) and ks["student_kd"]["claimed"]
    sig = unseen["significance"]["student_kd"]
    assert sig["utterances"] == 8 and sig["wer_diff"] == pytest.approx(-3 / 48 * 100, abs=1e-4)
    assert (f"## Table 1: every system, test (OOV rate 0.00 %, LM perplexity "
            f"{main_['perplexity']:.2f})") in md
    assert (f"## Table 1: every system, test_unseen (OOV rate 12.50 %, LM perplexity "
            f"{unseen['perplexity']:.2f})") in md
    assert "## kept over seeds, test_unseen" in md and "| test_unseen | student_kd |" in md
    assert (recipe / "exp" / "plots" / "results_test_unseen.png").is_file()
    assert json.loads((recipe / "exp" / "results.json").read_text())["test_sets"] == json.loads(
        json.dumps(res["test_sets"]))


def test_no_lm_or_lexicon_gives_none(recipe):
    (recipe / "data" / "local" / "lm.arpa").unlink()
    (recipe / "data" / "lang" / "words.txt").unlink()
    res = make_report(recipe / "exp", "toy", "test", recipe_dir=recipe)["results"]
    assert res["test_sets"]["test"]["oov_rate"] is None
    assert res["test_sets"]["test"]["perplexity"] is None


def test_arpa_perplexity_is_ngram_lms(tmp_path):
    lm = train_kneser_ney(LM_TRAIN, order=3, vocab=VOCAB)
    (tmp_path / "lm.arpa").write_text(lm.to_arpa())
    arpa = ArpaLM(tmp_path / "lm.arpa")
    assert arpa.order == 3
    assert math.isclose(arpa.perplexity(TEST.values()), lm.perplexity(TEST.values()),
                        rel_tol=1e-5)


def test_cli_takes_several_test_sets(recipe, monkeypatch, capsys):
    args = build_parser().parse_args(["report", "exp", "--corpus", "toy", "--test-set", "test",
                                      "--test-set", "test_unseen"])
    assert args.test_set == ["test", "test_unseen"]
    monkeypatch.chdir(recipe)
    assert main(["report", "exp", "--corpus", "toy", "--test-set", "test",
                 "--test-set", "test_unseen"]) == 0
    res = json.loads((recipe / "exp" / "results.json").read_text())
    assert list(res["test_sets"]) == ["test", "test_unseen"]
    assert res["systems"]["student_kd"]["hyp"] == "exp/student_kd/decode_test/hyp.txt"
    assert "## Table 1: every system, test_unseen" in capsys.readouterr().out


def test_bootstrap_scores_what_the_decode_scored(recipe):
    """With a score map the decode wrote score_ref.txt and score_hyp.txt (the tokens as
    scored): the errors are counted on those, not on hyp.txt."""
    dec = recipe / "exp" / "student_big_kd" / "decode_test"
    scores = json.loads((dec / "scores.json").read_text())
    (recipe / "score_map.txt").write_text("zz a\n")
    lines = "".join(" ".join([u, *TEST[u]]) + "\n" for u in sorted(TEST))
    (dec / "score_ref.txt").write_text(lines)
    (dec / "score_hyp.txt").write_text(lines)  # as if the map had folded every error away
    scores.update(score_map="score_map.txt", wer_detail={**scores["wer_detail"], "errors": 0})
    (dec / "scores.json").write_text(json.dumps(scores))
    sig = make_report(recipe / "exp", "toy", "test", recipe_dir=recipe)["results"][
        "significance"]["student_big_kd"]
    hard = sum(ERRS["student_big_hard"])
    assert sig["wer_diff"] == pytest.approx((0 - hard) / 54 * 100, abs=1e-4)


def test_unknown_word_tokens(tmp_path):
    """An LM with <unk> scores the words it lacks as <unk>; a reference <UNK> is an OOV."""
    lm = train_kneser_ney([*LM_TRAIN, ["a", "<unk>"]], order=2, vocab=VOCAB)
    (tmp_path / "lm.arpa").write_text(lm.to_arpa())
    arpa = ArpaLM(tmp_path / "lm.arpa")
    assert arpa.perplexity([["a", "qq", "b"]]) == pytest.approx(
        lm.perplexity([["a", "<unk>", "b"]]), rel=1e-5)
    assert oov_rate([["a", "<UNK>", "qq"], ["b"]], {"a", "b", "<UNK>"}) == 0.5


def test_kept_against_transfer_set_size(recipe):
    """Stage 11's transfer runs between student_kd (no transfer set) and student_kdt (all)."""
    settings = {"targets": "soft", "variant": "kdt", "alpha": 0.5, "temperature": 2.0,
                "seed": 100, "transfer": ["data/extra"], "transfer_frames": 360000,
                "transfer_hours": 1.0, "transfer_weight": 0.5}
    _run(recipe, "transfer/student_kdt_1", "transfer", 65.5, ERRS["student_kdt"], settings,
         group="student", seed=100)
    # stage 7's student_kdt used two sets: 2.5 hours
    kdt = recipe / "exp" / "student_kdt" / "run.json"
    info = json.loads(kdt.read_text())
    info["settings"].update(transfer=["data/extra", "data/more"], transfer_frames=900000,
                            transfer_hours=2.5, transfer_weight=0.75)
    kdt.write_text(json.dumps(info))
    out = make_report(recipe / "exp", "toy", "test", recipe_dir=recipe)
    rows = out["results"]["transfer_curve"]["student"]
    assert [(r["run"], r["hours"], r["kept"]) for r in rows] == [
        ("student_kd", 0.0, 0.5), ("student_kdt_1", 1.0, 0.55), ("student_kdt", 2.5, 0.6)]
    # Each row names its transfer weight: points of different weights are not one curve.
    assert "| student_kd | - | 0.00 | - | 65.00 |" in out["markdown"]
    assert "| student_kdt_1 | extra | 1.00 | 0.5 | 65.50 |" in out["markdown"]
    assert "| student_kdt | extra, more | 2.50 | 0.75 | 66.00 |" in out["markdown"]
