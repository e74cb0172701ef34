"""The results report: every system decoded on each test set, and the distillation experiments.

Every trained run has a run.json (asr_kd.utils.runinfo) naming its role and settings; the
report reads those, never folder names. Table 1 is every run directly under exp/ with
decode_<test_set>/scores.json, one table per test set (`--test-set` repeated; the first is the
primary one, whose figures are also results.json's top-level keys); `sweep` runs make the
temperature and alpha sweep, `share` runs Table 5 (students on a share of the training data),
`seed` runs the kept-over-seeds tables, the `specialists` run stage 13's tables. Writes
exp/RESULTS.md (for people), exp/results.json (for programs; the contract later stages and
checks read, with each system's provenance; docs/pipeline.md lists its keys) and plots under
exp/plots/.

Students. A student run's settings say its `variant`: `hard` (hard targets only), `kd`
(distilled from the ensemble) or `kdt` (distilled, with transfer data); a run written before
variants existed is `hard` if its targets are hard, else `kd`. Its `group` is the student's
shape (student, student_big, ...). A student system is named `{group}_{variant}`: stage 7's
runs (role student) are S_hard, S_kd, S_kdt, stage 14's more seeds of them (role seed, the same
group and variant, settings.seed).

`kept` is the share of the ensemble's frame-accuracy gain over the hard-target student that a
distilled student keeps: (S_kd - S_hard) / (ensemble - S_hard), against the hard-target run of
its own group; the paper's is (60.8 - 58.9) / (61.1 - 58.9) = 0.86. `kept_by_system` gives it
for every distilled stage-7 system with a hard-target twin, `kept` for student_kd. One pair's
kept is as noisy as the students' seed-to-seed spread against the ensemble's gain:
`kept_seeds` gives it per seed (each distilled seed-k run against the hard seed-k run), and
kept of the mean accuracies. Where the ensemble's gain over the mean hard-target student is
under MIN_GAIN (1 point of frame accuracy) the ratio means little: `claimed` is false and
RESULTS.md compares WERs instead. `significance` compares each distilled system's WER with its
hard-target twin's by a paired bootstrap over the test utterances (asr_kd.score.bootstrap).
"""

from __future__ import annotations

import json
import logging
import os
import re
import statistics
from pathlib import Path

from asr_kd.score.bootstrap import RESAMPLES, SEED, paired_bootstrap, read_text, utterance_errors
from asr_kd.score.lm import ArpaLM, oov_rate, read_words
from asr_kd.score.wer import apply_score_map, read_score_map
from asr_kd.utils.io import atomic_path, write_json, write_text
from asr_kd.utils.runinfo import find_runs, provenance

log = logging.getLogger(__name__)

PRIMARY_GROUP = "student"  # the recipe's own student config, conf/student.yaml
HARD = "hard"
VARIANTS = (HARD, "kd", "kdt")  # Table 1's order within a group
MIN_GAIN = 1.0  # frame-accuracy points of ensemble over S_hard under which kept is not claimed
FRAME_SHIFT = 0.01  # seconds per frame, as asr_kd/steps/decode.py counts the audio
LM_FILES = ("data/local/lm.arpa", "data/lang/lm.arpa")  # the first found, under the recipe dir
WORDS_FILE = "data/lang/words.txt"


class Run:
    """One trained run: its directory, run.json and decode scores on one test set."""

    def __init__(self, path: Path, info: dict, scores: dict | None):
        self.path, self.info, self.scores = path, info, scores
        self.name = path.name
        self.role = info["role"]
        self.settings = info.get("settings", {})

    @property
    def targets(self) -> str | None:
        return self.settings.get("targets")

    @property
    def group(self) -> str:
        return self.info.get("group") or PRIMARY_GROUP

    @property
    def variant(self) -> str | None:
        """hard, kd or kdt (settings.variant; from the targets for a run without one)."""
        v = self.settings.get("variant")
        if v is not None:
            return v
        return {"hard": HARD, "soft": "kd"}.get(self.targets)

    @property
    def system(self) -> str:
        """A student's system name, {group}_{variant}."""
        return f"{self.group}_{self.variant}"

    @property
    def acc(self) -> float | None:
        return self.scores["frame_acc"]

    @property
    def seed(self):
        return self.settings.get("seed")


def _runs(found: dict[Path, dict], test_set: str) -> list[Run]:
    out = []
    for path, info in found.items():
        sc = path / f"decode_{test_set}" / "scores.json"
        out.append(Run(path, info, json.loads(sc.read_text()) if sc.exists() else None))
    return out


_ROLE_RANK = {"gmm": 0, "teacher": 1, "ensemble": 2, "student": 3, "specialists": 4}


def _variant_rank(v) -> int:
    return VARIANTS.index(v) if v in VARIANTS else len(VARIANTS)


def _system_order(run: Run):
    """The GMMs (monophone first), teachers by member, the ensemble, the students (the
    recipe's own group first, each as hard, kd, kdt), the rest."""
    s = run.settings
    if run.role == "gmm":
        return (0, s.get("kind") != "mono", run.name)
    if run.role == "teacher":
        return (1, s.get("member", 0), run.name)
    if run.role == "student":
        return (3, (run.group != PRIMARY_GROUP, run.group, _variant_rank(run.variant)), run.name)
    return (_ROLE_RANK.get(run.role, 5), 0, run.name)


def _kept(kd, hard, ens) -> float | None:
    """(kd - hard) / (ens - hard) from frame accuracies; None where one is missing or the
    ensemble ties the hard-target student."""
    if None in (kd, hard, ens) or ens == hard:
        return None
    return round((kd - hard) / (ens - hard), 4)


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def _mean(xs):
    return None if not xs or None in xs else statistics.fmean(xs)


def _sd(xs):
    return None if len(xs) < 2 or None in xs else statistics.stdev(xs)


def _round(v, nd=4):
    return None if v is None else round(v, nd)


def _decode_rtfx(s: dict) -> float | None:
    """Seconds of audio per second of decoding (the model's scoring and the search), from the
    timings decode wrote to scores.json; None where it wrote none."""
    secs = [s.get("model_seconds"), s.get("search_seconds")]
    if s.get("frames") is None or None in secs or sum(secs) <= 0:
        return None
    return round(s["frames"] * FRAME_SHIFT / sum(secs), 1)


_FINISHED = re.compile(r"asr-kd train-\S+ finished in ([0-9.]+)s")


def _train_seconds(run: Run) -> float | None:
    """Seconds a run trained: its epochs' (history.json, kept across restarts); the teachers'
    for the ensemble (EXP/teachers, members trained together, so none for one teacher); a GMM's
    training verb's wall time (its log's last `finished in` line: a --force rerun replaces it)."""
    if run.role == "gmm":
        found = [float(m[1]) for log in sorted((run.path / "log").glob("train-*.log"))
                 for m in _FINISHED.finditer(log.read_text(errors="replace"))]
        return found[-1] if found else None
    hist = run.path / "history.json"
    if run.role == "ensemble":
        hist = run.path.parent / "teachers" / "history.json"
    if not hist.is_file():
        return None
    epochs = json.loads(hist.read_text())
    secs = [e["seconds"] for e in epochs if e.get("seconds") is not None]
    return sum(secs) if secs and len(secs) == len(epochs) else None


def _run_info(run_dir: Path) -> dict:
    hist = json.loads((run_dir / "history.json").read_text())
    train_eval = run_dir / "train_eval.json"
    return {"history": hist,
            "train": json.loads(train_eval.read_text()) if train_eval.exists() else None}


def _best_valid(run: Run) -> float | None:
    """The best validation frame accuracy of a run's epochs (its final weights' epoch)."""
    path = run.path / "history.json"
    if not path.is_file():
        return None
    return max((h["members"][0]["valid_acc"] for h in json.loads(path.read_text())),
               default=None)


def _sweep(runs: list[Run]) -> list[dict]:
    rows = [{"run": r.name, "shape": r.group, "variant": r.variant,
             "temperature": r.settings["temperature"],
             "alpha": r.settings["alpha"], "transfer_weight": r.settings.get("transfer_weight"),
             "valid_acc": _best_valid(r), "frame_acc": r.scores["frame_acc"],
             "wer": r.scores["wer"]}
            for r in runs if r.role == "sweep" and r.scores is not None]
    return sorted(rows, key=lambda r: (r["shape"] != PRIMARY_GROUP, r["shape"], r["variant"] or "",
                                       r["alpha"], r["temperature"], r["transfer_weight"] or 0))


def _share(runs: list[Run]) -> list[dict]:
    rows = []
    for run in runs:
        if run.role != "share" or run.scores is None:
            continue
        name, s, info = run.name, run.scores, _run_info(run.path)
        rows.append({"run": name, "targets": run.targets,
                     "percent": round(100 * run.settings["utt_fraction"], 2),
                     "utts": info["train"]["utts"], "pdfs_seen": info["train"]["pdfs_seen"],
                     "train_frame_acc": info["train"]["frame_acc"],
                     "test_frame_acc": s["frame_acc"], "wer": s["wer"],
                     "valid_acc_by_epoch": [h["members"][0]["valid_acc"]
                                            for h in info["history"]],
                     "train_acc_by_epoch": [h["members"][0]["train_acc"]
                                            for h in info["history"]]})
    return sorted(rows, key=lambda r: (r["percent"], r["targets"]))


def _transfer_curve(runs: list[Run], stage7: dict, ens: float | None) -> dict[str, list[dict]]:
    """kept against the transfer sets' size, per group with `transfer` runs (stage 11): S_kd
    (none), each transfer run (a part of the sets), S_kdt (all of them), by size."""
    out = {}
    for group in sorted({r.group for r in runs if r.role == "transfer"}):
        hard = stage7.get((group, HARD))
        points = [r for r in runs if r.role == "transfer" and r.group == group]
        points += [stage7[k] for k in ((group, "kd"), (group, "kdt")) if k in stage7]
        rows = [{"run": r.name, "transfer": r.settings.get("transfer", []),
                 "frames": r.settings.get("transfer_frames") or 0,
                 "hours": r.settings.get("transfer_hours") or 0.0,
                 "transfer_weight": r.settings.get("transfer_weight"),
                 "frame_acc": r.acc, "wer": r.scores["wer"],
                 "kept": _kept(r.acc, hard.acc, ens) if hard else None}
                for r in points if r.scores is not None]
        if rows:
            out[group] = sorted(rows, key=lambda row: row["frames"])
    return out


def _transfer_table(curve: dict[str, list[dict]]) -> list[str]:
    lines = []
    for group, rows in curve.items():
        lines += [f"## {group}: kept against the transfer sets' size", "",
                  "| run | transfer sets | hours | transfer weight | frame acc % | WER % | kept |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['run']} | {', '.join(Path(t).name for t in r['transfer']) or '-'} | "
                  f"{r['hours']:.2f} | {_fmt(r['transfer_weight'], 'g')} | "
                  f"{_fmt(r['frame_acc'], '.2f')} | "
                  f"{r['wer']:.2f} | {_fmt(r['kept'], '.2f')} |" for r in rows]
        lines.append("")
    return lines


def _specialists(runs: list[Run], test_set: str, primary: list[Run]) -> dict | None:
    """Stage 13's figures: clusters, the generalist, the coverage breakdown, and the systems to
    show beside them (the generalist, the combination, students distilled from it, the recipe's
    own student_kd and student_hard, given as `primary`)."""
    spec = next((r for r in runs if r.role == "specialists" and r.scores is not None), None)
    if spec is None:
        return None
    path = spec.path / f"decode_{test_set}" / "coverage.json"
    if not path.exists():
        return None
    clusters = json.loads((spec.path / "clusters.json").read_text())["clusters"]
    generalist = Path(spec.info["teacher"]).parent.name
    # run.json paths are as the recipe gave them (relative to the recipe dir, where the report
    # runs), exp_dir as the caller gave it: compare them resolved.
    model = (spec.path / "final.pt").resolve()
    students = [r.name for r in runs if r.role == "student" and r.info.get("teacher")
                and Path(r.info["teacher"]).resolve() == model]
    shown = [generalist, spec.name, *students]
    shown += [r.name for r in primary]
    return {"generalist": generalist, "clusters": len(clusters),
            "cluster_size": spec.settings["cluster_size"], "top_n": spec.settings["top_n"],
            "pdfs_covered": len({p for c in clusters for p in c}),
            "coverage": json.loads(path.read_text())["rows"], "shown": shown}


def _specialist_tables(spec: dict, systems: dict) -> list[str]:
    names = [n for n in spec["shown"] if n in systems]
    lines = ["## Specialists (paper section 5)", "",
             f"Generalist `{spec['generalist']}` plus {spec['clusters']} specialists of "
             f"{spec['cluster_size']} pdfs each ({spec['pdfs_covered']} pdfs covered); a "
             f"frame's active specialists are those covering one of the generalist's top "
             f"{spec['top_n']} pdfs. "
             "Students distilled from the combination are listed after it.", "",
             "| system | frame acc % | WER % | params |", "|---|---|---|---|"]
    lines += [f"| {n} | {_fmt(systems[n]['frame_acc'], '.2f')} | {systems[n]['wer']:.2f} | "
              f"{systems[n]['params']:,} |" for n in names]
    lines += ["", "Test frames by the number of active specialists covering the correct pdf "
              "(the paper's Table 4):", "",
              "| specialists covering | frames | generalist acc % | with specialists acc % | "
              "delta correct | relative change % |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['covering']} | {r['frames']} | {r['generalist_acc']:.2f} | "
              f"{r['combined_acc']:.2f} | {r['delta_correct']:+d} | "
              f"{_fmt(r['relative_change'], '+.2f')} |" for r in spec["coverage"]]
    return lines + [""]




def _stage7(table1: list[Run]) -> dict[tuple[str, str], Run]:
    """Stage 7's students in Table 1 by (group, variant); the first in path order where two
    runs claim one system."""
    out: dict[tuple[str, str], Run] = {}
    for r in sorted(table1, key=lambda r: r.path):
        if r.role != "student" or r.variant is None:
            continue
        key = (r.group, r.variant)
        if key in out:
            log.warning("%s and %s are both %s: the report uses the first", out[key].path,
                        r.path, r.system)
            continue
        out[key] = r
    return out


def _distilled(stage7: dict) -> dict[str, tuple[Run, Run]]:
    """{system: (distilled run, its group's hard-target run)} for every distilled stage-7
    student that has one, the recipe's own group first."""
    out = {}
    for (group, variant), r in sorted(stage7.items(), key=lambda kv: (
            kv[0][0] != PRIMARY_GROUP, kv[0][0], _variant_rank(kv[0][1]))):
        if variant != HARD and (group, HARD) in stage7:
            out[r.system] = (r, stage7[(group, HARD)])
    return out


def _seed_pairs(runs: list[Run], kd: Run, hard: Run) -> list[tuple[object, Run, Run]]:
    """[(seed, distilled run, hard-target run)]: stage 7's pair (at the distilled run's seed),
    then each `seed` run of the same group and variant beside the group's hard-target `seed`
    run of the same seed, by seed."""
    def by_seed(variant):
        out = {}
        for r in runs:
            if (r.role == "seed" and r.scores is not None and r.group == kd.group
                    and r.variant == variant):
                out.setdefault(r.seed, r)
        return out

    kds, hards = by_seed(kd.variant), by_seed(HARD)
    pairs = {kd.seed: (kd, hard)}
    for seed, r in kds.items():
        if seed in hards:
            pairs.setdefault(seed, (r, hards[seed]))
    return [(s, *p) for s, p in sorted(pairs.items(), key=lambda kv: (
        kv[0] is None, kv[0] if isinstance(kv[0], (int, float)) else 0, str(kv[0])))]


def _kept_seeds(pairs: list, ens: float | None) -> dict:
    hard_acc = [h.acc for _, _, h in pairs]
    acc = [k.acc for _, k, _ in pairs]
    kept = [_kept(k.acc, h.acc, ens) for _, k, h in pairs]
    mean_hard = _mean(hard_acc)
    gain = None if None in (ens, mean_hard) else round(ens - mean_hard, 4)
    return {"vs": f"{pairs[0][2].group}_{HARD}", "seeds": [s for s, _, _ in pairs],
            "kept": kept, "wer": [k.scores["wer"] for _, k, _ in pairs],
            "hard_wer": [h.scores["wer"] for _, _, h in pairs], "acc": acc,
            "hard_acc": hard_acc, "kept_mean": _round(_mean(kept)),
            "kept_sd": _round(_sd(kept)), "kept_of_means": _kept(_mean(acc), mean_hard, ens),
            "gain": gain, "claimed": gain is not None and gain >= MIN_GAIN}


def _reference(recipe_dir: Path, test_set: str, scores: dict | None) -> Path | None:
    """The test set's Kaldi text: the decoded data dir's (scores.json `data`), else
    data/<test_set>/text, under the recipe dir."""
    cands = [] if not scores or not scores.get("data") else [recipe_dir / scores["data"] / "text"]
    cands.append(recipe_dir / "data" / test_set / "text")
    return next((p for p in cands if p.is_file()), None)


def _scored_texts(run: Run, test_set: str, recipe_dir: Path):
    """(references, hypotheses) as the decode scored them (a score map applied), or None
    where the files are gone."""
    dec, s = run.path / f"decode_{test_set}", run.scores
    if s.get("score_map"):
        ref, hyp = dec / "score_ref.txt", dec / "score_hyp.txt"
        if ref.is_file() and hyp.is_file():
            return read_text(ref), read_text(hyp)
    hyp = dec / "hyp.txt"
    if not hyp.is_file() and s.get("hyp"):
        hyp = recipe_dir / s["hyp"]
    ref = _reference(recipe_dir, test_set, s)
    if ref is None or not hyp.is_file():
        return None
    refs, hyps = read_text(ref), read_text(hyp)
    if s.get("score_map"):
        mapping = read_score_map(recipe_dir / s["score_map"])
        refs, hyps = apply_score_map(refs, mapping), apply_score_map(hyps, mapping)
    return refs, hyps


def _run_errors(run: Run, test_set: str, recipe_dir: Path):
    """(sorted utterance ids, errors per utterance, reference words per utterance) of a run's
    decode, or None where its hypotheses or the references cannot be read."""
    texts = _scored_texts(run, test_set, recipe_dir)
    if texts is None:
        log.warning("%s: no hypotheses or references for %s: no significance test", run.path,
                    test_set)
        return None
    refs, hyps = texts
    utts = sorted(refs)
    errors, words = utterance_errors(refs, hyps, utts)
    expected = run.scores.get("wer_detail", {}).get("errors")
    if expected is not None and int(errors.sum()) != expected:
        log.warning("%s: %d errors counted from its hypotheses, %d in scores.json", run.path,
                    int(errors.sum()), expected)
    return utts, errors, words


def _significance(pairs: list, test_set: str, recipe_dir: Path, cache: dict) -> dict | None:
    """The paired bootstrap of a distilled system against its hard-target twin, pooled over
    the seed pairs, the utterances in sorted id order; None where a run's hypotheses or the
    references cannot be read."""
    for _, kd, hard in pairs:
        for r in (kd, hard):
            if r.path not in cache:
                cache[r.path] = _run_errors(r, test_set, recipe_dir)
            if cache[r.path] is None:
                return None
    utts, _, words = cache[pairs[0][1].path]
    for _, kd, hard in pairs:
        for r in (kd, hard):
            if cache[r.path][0] != utts or (cache[r.path][2] != words).any():
                log.warning("%s: %s's references differ from %s's: no significance test",
                            test_set, r.path, pairs[0][1].path)
                return None
    if not words.sum():
        return None
    return {"vs": f"{pairs[0][2].group}_{HARD}", "seeds": [s for s, _, _ in pairs],
            **paired_bootstrap([cache[kd.path][1] for _, kd, _ in pairs],
                               [cache[hard.path][1] for _, _, hard in pairs], words)}


def _test_set(exp_dir: Path, found: dict, test_set: str, recipe_dir: Path, lm) -> dict:
    """Everything the report says about one test set."""
    runs = _runs(found, test_set)
    table1 = sorted((r for r in runs if r.path.parent == exp_dir and r.scores is not None),
                    key=_system_order)
    ensemble = next((r for r in table1 if r.role == "ensemble"), None)
    ens = ensemble.acc if ensemble else None
    stage7 = _stage7(table1)
    distilled = _distilled(stage7)
    kept = {sys_: (kd, hard, _kept(kd.acc, hard.acc, ens)) for sys_, (kd, hard) in
            distilled.items()}
    kept_seeds, significance, cache = {}, {}, {}
    for sys_, (kd, hard) in distilled.items():
        pairs = _seed_pairs(runs, kd, hard)
        if ens is not None:
            kept_seeds[sys_] = _kept_seeds(pairs, ens)
        sig = _significance(pairs, test_set, recipe_dir, cache)
        if sig is not None:
            significance[sys_] = sig
    ref = _reference(recipe_dir, test_set, table1[0].scores if table1 else None)
    words = recipe_dir / WORDS_FILE
    texts = list(read_text(ref).values()) if ref else None
    return {"name": test_set, "runs": runs, "table1": table1, "ensemble": ensemble, "ens": ens,
            "stage7": stage7, "kept": kept, "kept_seeds": kept_seeds,
            "significance": significance,
            "oov_rate": (None if texts is None or not words.is_file()
                         else _round(oov_rate(texts, read_words(words)), 6)),
            "perplexity": (None if texts is None or lm is None
                           else _round(lm.perplexity(texts), 2))}


def _load_lm(recipe_dir: Path):
    path = next((recipe_dir / p for p in LM_FILES if (recipe_dir / p).is_file()), None)
    return None if path is None else ArpaLM(path)


def _not_claimed(gain, hard: str) -> str:
    return (f"the ensemble's gain over {hard} is {gain:.2f} points, under {MIN_GAIN:g}: kept "
            f"is not claimed")


def _heading(ts: dict) -> str:
    oov = "-" if ts["oov_rate"] is None else f"{100 * ts['oov_rate']:.2f} %"
    return (f"## Table 1: every system, {ts['name']} (OOV rate {oov}, LM perplexity "
            f"{_fmt(ts['perplexity'], '.2f')})")


def _table1(ts: dict, systems: dict, recipe_dir) -> list[str]:
    ensemble = ts["ensemble"].name if ts["ensemble"] else "ensemble"
    kept_of = {kd.name: (hard, k) for kd, hard, k in ts["kept"].values()}
    lines = [_heading(ts), ""]
    if not systems:
        return lines + [f"No system is decoded on {ts['name']}.", ""]
    tuned = {n: _lm_tuning(s) for n, s in systems.items()}
    fixed = sorted({t["fixed"]["lm_weight"] for t in tuned.values() if t})
    lm_cols = (f"| LM weight, penalty | WER % at weight {'/'.join(f'{w:g}' for w in fixed)} "
               if fixed else "")
    lines += ["| system | WER % | errors | frame acc % | params | FLOPs/frame | decode RTFx "
              f"| train s | kept {lm_cols}|",
              "|---|---|---|---|---|---|---|---|---|" + "---|" * (2 * bool(fixed))]
    train_s = {r.name: _train_seconds(r) for r in ts["table1"]}
    for n, s in systems.items():
        det = s["wer_detail"]
        k = "-"
        if n in kept_of and kept_of[n][1] is not None:
            hard, kv = kept_of[n]
            k = f"{kv:.2f}" + ("" if ts["ens"] - hard.acc >= MIN_GAIN else " (not claimed)")
        t = tuned[n]
        lm = ("" if not fixed else "| - | - " if not t else
              f"| {t['chosen']['lm_weight']:g}, {t['chosen']['word_ins_penalty']:g} "
              f"| {t['wer_fixed']:.2f} ")
        lines.append(f"| {n} | {s['wer']:.2f} | {det['errors']} / {det['words']} "
                     f"({det['ins']} ins, {det['dels']} del, {det['subs']} sub) | "
                     f"{_fmt(s['frame_acc'], '.2f')} | {s['params']:,} | "
                     f"{_fmt(s.get('flops_per_frame'), ',')} | "
                     f"{_fmt(_decode_rtfx(s), '.0f')} | {_fmt(train_s.get(n), ',.0f')} | "
                     f"{k} {lm}|")
    lines.append("")
    if fixed:
        on = sorted({t["chosen_on"] for t in tuned.values() if t})
        lines.append(f"LM weight, penalty: each system's, the lowest WER on {', '.join(on)} "
                     "(the weights and word insertion penalties of Kaldi's score.sh); WER % "
                     "at the decode config's fixed weight (penalty 0) beside it.  ")
    lines.append("decode RTFx: seconds of audio per second of decoding (the network's scores and "
                 "the search). train s: seconds of training (a DNN's epochs, the teachers' for "
                 "the ensemble; a GMM's training stage) as measured, other jobs on the same "
                 "cores included.  ")
    for kd, hard, k in ts["kept"].values():
        if k is None:
            continue
        gain = ts["ens"] - hard.acc
        note = "" if gain >= MIN_GAIN else f": {_not_claimed(gain, hard.name)}"
        lines.append(f"kept = ({kd.name} - {hard.name}) / ({ensemble} - {hard.name}) in frame "
                     f"accuracy = **{k:.2f}** (paper: 0.86){note}  ")
    maps = sorted({s.get("score_map") for s in systems.values()} - {None})
    if maps:  # e.g. TIMIT: 48 phones folded to 39, the WER a phone error rate
        maps = [_rel(m, recipe_dir) for m in maps]
        lines += ["", f"Scored after mapping the tokens of references and hypotheses with "
                      f"{', '.join(f'`{m}`' for m in maps)}."]
    lines += ["", "Kaldi-format lines:", "", "```"]
    lines += [f"{n}: {s['kaldi_line']}" for n, s in systems.items()]
    return lines + ["```", ""]


def _lm_tuning(scores: dict) -> dict | None:
    """A decode's LM weight choice, where one was made on a dev set (asr_kd.decode.lm_weight):
    a decode at its config's fixed weight has none."""
    t = scores.get("lm_tuning")
    return t if t and t.get("chosen_on") else None


def _seed_tables(ts: dict) -> list[str]:
    if not ts["kept_seeds"]:
        return []
    lines = [f"## kept over seeds, {ts['name']}", "",
             f"Each distilled student against its group's hard-target student of the same "
             f"seed; ensemble {_fmt(ts['ens'], '.2f')} % frame accuracy. kept is claimed only "
             f"where the ensemble gains at least {MIN_GAIN:g} point over the hard-target "
             f"students' mean accuracy.", ""]
    for sys_, k in ts["kept_seeds"].items():
        hard, claimed, n = k["vs"], k["claimed"], len(k["seeds"])
        lines += [f"### {sys_} against {hard}", ""]
        head = ["seed", f"{hard} acc %", f"{sys_} acc %"] + (["kept"] if claimed else []) + [
            f"{hard} WER %", f"{sys_} WER %"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        cols = [("hard_acc", ".2f"), ("acc", ".2f")] + ([("kept", ".2f")] if claimed else []) + [
            ("hard_wer", ".2f"), ("wer", ".2f")]
        for i, seed in enumerate(k["seeds"]):
            lines.append(f"| {seed} | " + " | ".join(_fmt(k[c][i], f) for c, f in cols) + " |")
        for label, fn in (("mean", _mean), ("sd", _sd)):
            if n > 1:
                lines.append(f"| {label} | " + " | ".join(_fmt(fn(k[c]), f) for c, f in cols)
                             + " |")
        lines.append("")
        if claimed:
            lines.append(f"kept: mean **{_fmt(k['kept_mean'], '.2f')}**, standard deviation "
                         f"{_fmt(k['kept_sd'], '.2f')}; of the mean accuracies "
                         f"{_fmt(k['kept_of_means'], '.2f')} (paper: 0.86)")
        else:
            gain = "-" if k["gain"] is None else f"{k['gain']:.2f}"
            lines.append(f"The ensemble's gain over {hard} is {gain} points, under "
                         f"{MIN_GAIN:g}: kept is not claimed. WER instead: {sys_} "
                         f"{_fmt(_mean(k['wer']), '.2f')} % against {hard} "
                         f"{_fmt(_mean(k['hard_wer']), '.2f')} % (mean of {n} seed"
                         f"{'s' if n > 1 else ''}; significance below).")
        lines.append("")
    return lines


def _significance_table(sets: list[dict]) -> list[str]:
    rows = [(ts["name"], sys_, s) for ts in sets for sys_, s in ts["significance"].items()]
    if not rows:
        return []
    lines = ["## Significance: distilled against hard-target students", "",
             f"Paired bootstrap over the test utterances ({RESAMPLES} resamples, numpy "
             f"default_rng({SEED}); asr_kd/score/bootstrap.py), the errors pooled over the "
             "seeds, seed k's distilled run beside seed k's hard-target run. WER diff: the "
             "distilled system's WER minus the hard-target one's, in points (negative: fewer "
             "errors); 95% percentile interval; p_win: the share of resamples in which the "
             "distilled system makes fewer errors, a tie counting half.", "",
             "| test set | system | vs | seeds | utterances | WER diff | 95% interval | "
             "p_win |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {t} | {sys_} | {s['vs']} | {', '.join(map(str, s['seeds']))} | "
              f"{s['utterances']} | {s['wer_diff']:+.2f} | [{s['ci95'][0]:+.2f}, "
              f"{s['ci95'][1]:+.2f}] | {s['p_win']:.3f} |" for t, sys_, s in rows]
    return lines + [""]


def _run_provenance(run: Run) -> dict:
    p = run.info.get("provenance", {})
    return {"role": run.role, "settings": run.settings, "group": run.info.get("group"),
            **{k: p.get(k) for k in ("commit", "dirty", "config_sha256", "device", "threads",
                                     "seed")}}


def _rel(path, recipe_dir):
    """A path from scores.json (relative to the recipe dir, or absolute) relative to the
    recipe dir."""
    return path and os.path.relpath(Path(recipe_dir) / path, recipe_dir)


def make_report(exp_dir, corpus: str, test_set, recipe_dir=".") -> dict:
    """Report exp_dir's runs on `test_set` (a name, or a list of names: the first is the
    primary one); returns {"results": what results.json holds, "markdown": RESULTS.md}."""
    exp_dir, recipe_dir = Path(exp_dir), Path(recipe_dir)
    names = [test_set] if isinstance(test_set, str) else list(test_set)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"test sets {names}: give at least one, each once")
    found, lm = find_runs(exp_dir), _load_lm(recipe_dir)
    sets = [_test_set(exp_dir, found, t, recipe_dir, lm) for t in names]
    main = sets[0]
    if not main["table1"]:
        raise FileNotFoundError(f"{exp_dir}: no run (run.json) with decode_{names[0]}/"
                                f"scores.json to report")
    per_set = {ts["name"]: {r.name: r.scores for r in ts["table1"]} for ts in sets}
    systems = per_set[names[0]]
    primary = {v: main["stage7"].get((PRIMARY_GROUP, v)) for v in (HARD, "kd")}
    results = {"corpus": corpus, "test_set": names[0], "systems": {
        r.name: {"wer": s["wer"], "frame_acc": s["frame_acc"], "params": s["params"],
                 "flops_per_frame": s.get("flops_per_frame"),
                 "hyp": _rel(s["hyp"], recipe_dir), "kaldi_line": s["kaldi_line"],
                 "score_map": _rel(s.get("score_map"), recipe_dir),
                 "lm_tuning": _lm_tuning(s), "run": _run_provenance(r)}
        for r, s in ((r, r.scores) for r in main["table1"])},
        "kept": main["kept"].get(f"{PRIMARY_GROUP}_kd", (None, None, None))[2],
        "kept_by_system": {sys_: k for sys_, (_, _, k) in main["kept"].items()},
        "kept_seeds": main["kept_seeds"], "significance": main["significance"]}
    results["test_sets"] = {ts["name"]: {
        "systems": {n: {"wer": s["wer"], "frame_acc": s["frame_acc"],
                        "hyp": _rel(s["hyp"], recipe_dir)}
                    for n, s in per_set[ts["name"]].items()},
        "oov_rate": ts["oov_rate"], "perplexity": ts["perplexity"],
        "kept_seeds": ts["kept_seeds"], "significance": ts["significance"]} for ts in sets}

    lines = [f"# Results: {corpus}, {', '.join(names)}", ""]
    for ts in sets:
        lines += _table1(ts, per_set[ts["name"]], recipe_dir)
        if per_set[ts["name"]]:
            plot = "results.png" if ts is main else f"results_{ts['name']}.png"
            _plot_systems(exp_dir / "plots" / plot, per_set[ts["name"]],
                          f"{corpus} — {ts['name']}")

    runs, ens = main["runs"], main["ens"]
    sweep = _sweep(runs)
    if sweep:
        results["sweep"] = sweep
        lines += ["## Sweep of T, alpha and the transfer weight (each shape's model and schedule)",
                  "", "Settings are chosen on the validation split (held-out utterances of the "
                  "training speakers), never on test: `valid acc` is each run's best epoch. "
                  "Each shape's best is chosen among its own runs.", "",
                  "| run | shape | variant | T | alpha | transfer weight | valid acc % "
                  "| test frame acc % | WER % |", "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['run']} | {r['shape']} | {r['variant']} | {r['temperature']:g} | "
                  f"{r['alpha']:g} | {_fmt(r['transfer_weight'], 'g')} | "
                  f"{_fmt(r['valid_acc'], '.2f')} | {_fmt(r['frame_acc'], '.2f')} | "
                  f"{r['wer']:.2f} |" for r in sweep]
        chosen = {(r["shape"], r["variant"]) for r in sweep if r["valid_acc"] is not None}
        for shape, variant in sorted(chosen, key=lambda k: (k[0] != PRIMARY_GROUP, k)):
            best = max((r for r in sweep if (r["shape"], r["variant"]) == (shape, variant)
                        and r["valid_acc"] is not None), key=lambda r: r["valid_acc"])
            weight = best["transfer_weight"]
            lines.append(f"\nBest on validation ({shape}_{variant}): {best['run']} (T "
                         f"{best['temperature']:g}, alpha {best['alpha']:g}"
                         + (f", transfer weight {weight:g}" if weight else "") + ").")
        lines.append("")
        baselines = {"ensemble": ens,
                     "hard targets": primary[HARD].acc if primary[HARD] else None}
        # The plot's baselines are the small student's, so it shows that shape's runs alone.
        _plot_sweep(exp_dir / "plots" / "temperature.png",
                    [r for r in sweep if r["shape"] == PRIMARY_GROUP], baselines)
    share = _share(runs)
    if share:
        results["share"] = share
        lines += ["## Table 5: students on a share of the training utterances", "",
                  "| share | targets | utterances | pdfs seen | train frame acc % | "
                  "test frame acc % | WER % |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['percent']:g}% | {r['targets']} | {r['utts']} | {r['pdfs_seen']} | "
                  f"{r['train_frame_acc']:.2f} | {_fmt(r['test_frame_acc'], '.2f')} | "
                  f"{r['wer']:.2f} |" for r in share]
        lines.append("")
        _plot_share(exp_dir / "plots" / "share.png", share)

    curve = _transfer_curve(runs, main["stage7"], ens)
    if curve:
        results["transfer_curve"] = curve
        lines += _transfer_table(curve)
    spec = _specialists(runs, names[0], [primary[v] for v in ("kd", HARD) if primary[v]])
    if spec:
        results["specialists"] = spec
        lines += _specialist_tables(spec, systems)
    for ts in sets:
        lines += _seed_tables(ts)
    lines += _significance_table(sets)
    results["provenance"] = provenance()

    table = "\n".join(lines)
    write_json(exp_dir / "results.json", results)
    write_text(exp_dir / "RESULTS.md", table)
    return {"results": results, "markdown": table}


def _figure(ncols: int, width: float = 4.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(1, ncols, figsize=(width * ncols, 3.2))


def _save(plt, fig, path: Path) -> None:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _plot_systems(path: Path, systems: dict, title: str) -> None:
    plt, fig, axes = _figure(2, 0.5 * len(systems) + 2.5)
    names = list(systems)
    axes[0].bar(names, [systems[n]["wer"] for n in names], color="tab:red")
    axes[0].set_ylabel("WER %")
    axes[1].bar(names, [systems[n]["frame_acc"] or 0.0 for n in names], color="tab:blue")
    axes[1].set_ylabel("frame accuracy %")
    accs = [systems[n]["frame_acc"] for n in names if systems[n]["frame_acc"]]
    if accs:
        axes[1].set_ylim(min(accs) - 3, max(accs) + 1)
    for ax in axes:
        ax.tick_params(axis="x", rotation=60)
    fig.suptitle(title)
    _save(plt, fig, path)


def _plot_sweep(path: Path, sweep: list[dict], baselines: dict) -> None:
    plt, fig, ax = _figure(1, 5.0)
    for alpha in sorted({r["alpha"] for r in sweep}):
        rows = [r for r in sweep if r["alpha"] == alpha]
        if len(rows) > 1:
            ax.plot([r["temperature"] for r in rows], [r["frame_acc"] for r in rows], "o-",
                    label=f"student, alpha {alpha:g}")
        else:
            ax.plot(rows[0]["temperature"], rows[0]["frame_acc"], "s",
                    label=f"student, alpha {alpha:g}")
    for (name, acc), style in zip(baselines.items(), ("k--", "r:")):
        if acc is not None:
            ax.axhline(acc, linestyle=style[1:], color=style[0], label=name)
    ax.set_xscale("log")
    ax.set_xlabel("temperature T")
    ax.set_ylabel("test frame accuracy %")
    ax.legend(fontsize=7)
    _save(plt, fig, path)


def _plot_share(path: Path, share: list[dict]) -> None:
    plt, fig, axes = _figure(2, 4.5)
    for r in share:
        epochs = range(1, len(r["valid_acc_by_epoch"]) + 1)
        label = f"{r['percent']:g}% {r['targets']}"
        axes[0].plot(epochs, r["train_acc_by_epoch"], "o-", label=label)
        axes[1].plot(epochs, r["valid_acc_by_epoch"], "o-", label=label)
    axes[0].set_title("train frame accuracy (own share)")
    axes[1].set_title("held-out frame accuracy")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    _save(plt, fig, path)
