"""The results report: every system decoded on a test set, and the distillation experiments.

Every trained run has a run.json (asr_kd.utils.runinfo) naming its role and settings; the
report reads those, never folder names. Table 1 is every run directly under exp/ with
decode_<test_set>/scores.json; `sweep` runs make the temperature and alpha sweep, `share` runs
Table 5 (students on a share of the training data), `seed` runs the kept-over-seeds table, the
`specialists` run stage 13's tables. Writes exp/RESULTS.md (for people), exp/results.json (for
programs; the contract later stages and checks read, with each system's provenance) and plots
under exp/plots/.

`kept` is the share of the ensemble's frame-accuracy gain over the hard-target student that the
distilled student keeps: (S_soft - S_hard) / (ensemble - S_hard) for a `student` group's pair
of runs (hard targets, distilled); the paper's is (60.8 - 58.9) / (61.1 - 58.9) = 0.86.
`kept_by_student` gives it for every group (student, student_tdnn, ...); `kept` is the
recipe's own group, `student`. One pair's `kept` is as noisy as the students' seed-to-seed
spread against the ensemble's gain; `seeds` gives it per seed, with the mean, the sample
standard deviation, and `kept` of the mean accuracies.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

from asr_kd.utils.io import atomic_path, write_json, write_text
from asr_kd.utils.runinfo import find_runs, provenance

PRIMARY_GROUP = "student"  # the recipe's own student config, conf/student.yaml


class Run:
    """One trained run: its directory, run.json and decode scores on the test set."""

    def __init__(self, path: Path, info: dict, scores: dict | None):
        self.path, self.info, self.scores = path, info, scores
        self.name = path.name
        self.role = info["role"]
        self.settings = info.get("settings", {})

    @property
    def targets(self) -> str | None:
        return self.settings.get("targets")


def _runs(exp_dir: Path, test_set: str) -> list[Run]:
    out = []
    for path, info in find_runs(exp_dir).items():
        sc = path / f"decode_{test_set}" / "scores.json"
        out.append(Run(path, info, json.loads(sc.read_text()) if sc.exists() else None))
    return out


def _pairs(runs: list[Run], role: str, key) -> dict:
    """{key(run): {"hard": run, "soft": run}} over the decoded runs of `role`, keeping the keys
    that have both."""
    pairs: dict = {}
    for r in runs:
        if r.role == role and r.scores is not None and r.targets in ("hard", "soft"):
            pairs.setdefault(key(r), {})[r.targets] = r
    return {k: v for k, v in pairs.items() if len(v) == 2}


def _student_pairs(runs: list[Run]) -> dict[str, dict]:
    """Stage 7's pairs by group, the recipe's own first."""
    pairs = _pairs(runs, "student", lambda r: r.info.get("group"))
    return dict(sorted(pairs.items(), key=lambda kv: (kv[0] != PRIMARY_GROUP, kv[0])))


_ROLE_RANK = {"gmm": 0, "teacher": 1, "ensemble": 2, "student": 3, "specialists": 4}


def _system_order(run: Run):
    """The GMMs (monophone first), teachers by member, the ensemble, the students (the
    recipe's own group first, each as hard then distilled), the rest."""
    s = run.settings
    if run.role == "gmm":
        return (0, s.get("kind") != "mono", run.name)
    if run.role == "teacher":
        return (1, s.get("member", 0), run.name)
    if run.role == "student":
        group = run.info.get("group") or ""
        return (3, (group != PRIMARY_GROUP, group, run.targets != "hard"), run.name)
    return (_ROLE_RANK.get(run.role, 5), 0, run.name)


def _kept(kd, hard, ens) -> float | None:
    """(kd - hard) / (ens - hard) from frame accuracies; None where one is missing or the
    ensemble ties the hard-target student."""
    if None in (kd, hard, ens) or ens == hard:
        return None
    return round((kd - hard) / (ens - hard), 4)


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def _table1(systems: dict, kept: dict, ensemble: str) -> list[str]:
    lines = ["| system | WER % | errors | frame acc % | params | FLOPs/frame | decode RTFx |",
             "|---|---|---|---|---|---|---|"]
    for n, s in systems.items():
        det = s["wer_detail"]
        lines.append(f"| {n} | {s['wer']:.2f} | {det['errors']} / {det['words']} "
                     f"({det['ins']} ins, {det['dels']} del, {det['subs']} sub) | "
                     f"{_fmt(s['frame_acc'], '.2f')} | {s['params']:,} | "
                     f"{_fmt(s.get('flops_per_frame'), ',')} | "
                     f"{_fmt(s.get('search_rtfx'), '.0f')} |")
    lines += [""] if kept else []
    for soft, hard, k in kept.values():
        if k is not None:
            lines.append(f"kept = ({soft} - {hard}) / ({ensemble} - {hard}) in frame "
                         f"accuracy = **{k:.2f}** (paper: 0.86)  ")
    return lines


def _run_info(run_dir: Path) -> dict:
    hist = json.loads((run_dir / "history.json").read_text())
    train_eval = run_dir / "train_eval.json"
    return {"history": hist,
            "train": json.loads(train_eval.read_text()) if train_eval.exists() else None}


def _sweep(runs: list[Run]) -> list[dict]:
    rows = [{"run": r.name, "temperature": r.settings["temperature"],
             "alpha": r.settings["alpha"], "frame_acc": r.scores["frame_acc"],
             "wer": r.scores["wer"]}
            for r in runs if r.role == "sweep" and r.scores is not None]
    return sorted(rows, key=lambda r: (r["alpha"], r["temperature"]))


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


def _seeds(runs: list[Run], ens: float | None, primary: dict | None) -> dict | None:
    """Stage 14's figures: kept for the recipe's own student pair and each `seed` pair."""
    seed_pairs = _pairs(runs, "seed", lambda r: r.settings["seed"])
    if ens is None or not seed_pairs:
        return None
    pairs = dict(seed_pairs)  # seed -> {"hard": run, "soft": run}
    if primary is not None:
        pairs.setdefault(primary["soft"].settings["seed"], primary)
    if len(pairs) < 2:
        return None
    rows = []
    for seed, p in sorted(pairs.items()):
        h, k = p["hard"].scores, p["soft"].scores
        rows.append({"seed": seed, "hard": h["frame_acc"], "kd": k["frame_acc"],
                     "hard_wer": h["wer"], "kd_wer": k["wer"],
                     "kept": _kept(k["frame_acc"], h["frame_acc"], ens)})
    kept = [r["kept"] for r in rows if r["kept"] is not None]
    mean = round(statistics.fmean(kept), 4) if kept else None
    std = round(statistics.stdev(kept), 4) if len(kept) > 1 else None
    accs = [(r["hard"], r["kd"]) for r in rows if None not in (r["hard"], r["kd"])]
    hard, kd = (sum(a) / len(accs) for a in zip(*accs)) if accs else (None, None)
    return {"rows": rows, "kept_mean": mean, "kept_std": std, "kept_of_means": _kept(kd, hard, ens)}


def _seed_table(seeds: dict, ens: float) -> list[str]:
    lines = ["## kept over student seeds", "",
             f"The student pair (hard targets, distilled) with {len(seeds['rows'])} seeds; "
             f"ensemble {_fmt(ens, '.2f')} % frame accuracy.", "",
             "| seed | student_hard acc % | student_kd acc % | kept | student_hard WER % | "
             "student_kd WER % |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {_fmt(r['hard'], '.2f')} | {_fmt(r['kd'], '.2f')} | "
              f"{_fmt(r['kept'], '.2f')} | {r['hard_wer']:.2f} | {r['kd_wer']:.2f} |"
              for r in seeds["rows"]]
    return lines + ["", f"kept: mean **{_fmt(seeds['kept_mean'], '.2f')}**, standard deviation "
                        f"{_fmt(seeds['kept_std'], '.2f')}; of the mean accuracies "
                        f"{_fmt(seeds['kept_of_means'], '.2f')} (paper: 0.86)", ""]


def _specialists(runs: list[Run], test_set: str, primary: dict | None) -> dict | None:
    """Stage 13's figures: clusters, the generalist, the coverage breakdown, and the systems to
    show beside them (the generalist, the combination, students distilled from it, the recipe's
    own student pair)."""
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
    if primary is not None:
        shown += [primary["soft"].name, primary["hard"].name]
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


def _run_provenance(run: Run) -> dict:
    p = run.info.get("provenance", {})
    return {"role": run.role, "settings": run.settings, "group": run.info.get("group"),
            **{k: p.get(k) for k in ("commit", "dirty", "config_sha256", "device", "threads",
                                     "seed")}}


def make_report(exp_dir, corpus: str, test_set: str, recipe_dir=".") -> dict:
    exp_dir = Path(exp_dir)
    runs = _runs(exp_dir, test_set)
    table1 = sorted((r for r in runs if r.path.parent == exp_dir and r.scores is not None),
                    key=_system_order)
    systems = {r.name: r.scores for r in table1}
    if not systems:
        raise FileNotFoundError(f"{exp_dir}: no run (run.json) with decode_{test_set}/"
                                f"scores.json to report")
    ensemble = next((r for r in table1 if r.role == "ensemble"), None)
    ens = ensemble.scores["frame_acc"] if ensemble else None
    pairs = _student_pairs(runs)
    primary = pairs.get(PRIMARY_GROUP)
    kept = {g: (p["soft"].name, p["hard"].name, _kept(p["soft"].scores["frame_acc"],
                                                      p["hard"].scores["frame_acc"], ens))
            for g, p in pairs.items()}
    results = {"corpus": corpus, "test_set": test_set, "systems": {
        r.name: {"wer": s["wer"], "frame_acc": s["frame_acc"], "params": s["params"],
                 "flops_per_frame": s.get("flops_per_frame"),
                 "hyp": os.path.relpath(s["hyp"], recipe_dir), "kaldi_line": s["kaldi_line"],
                 "score_map": s.get("score_map") and os.path.relpath(s["score_map"],
                                                                     recipe_dir),
                 "run": _run_provenance(r)}
        for r, s in ((r, r.scores) for r in table1)},
        "kept": kept[PRIMARY_GROUP][2] if PRIMARY_GROUP in kept else None,
        "kept_by_student": {g: k for g, (_, _, k) in kept.items()},
        "provenance": provenance()}
    lines = [f"# Results: {corpus}, {test_set}", "", "## Table 1: every system", ""]
    lines += _table1(systems, kept, ensemble.name if ensemble else "ensemble")
    maps = sorted({s["score_map"] for s in results["systems"].values()} - {None})
    if maps:  # e.g. TIMIT: 48 phones folded to 39, the WER a phone error rate
        lines += ["", f"Scored after mapping the tokens of references and hypotheses with "
                      f"{', '.join(f'`{m}`' for m in maps)}."]
    lines += ["", "Kaldi-format lines:", "", "```"]
    lines += [f"{n}: {s['kaldi_line']}" for n, s in systems.items()]
    lines += ["```", ""]
    _plot_systems(exp_dir / "plots" / "results.png", systems, f"{corpus} — {test_set}")

    sweep = _sweep(runs)
    if sweep:
        results["sweep"] = sweep
        lines += ["## Temperature and alpha sweep (student_kd's model and schedule)", "",
                  "| T | alpha | frame acc % | WER % |", "|---|---|---|---|"]
        lines += [f"| {r['temperature']:g} | {r['alpha']:g} | {_fmt(r['frame_acc'], '.2f')} | "
                  f"{r['wer']:.2f} |" for r in sweep]
        lines.append("")
        baselines = {"ensemble": ens,
                     "hard targets": primary["hard"].scores["frame_acc"] if primary else None}
        _plot_sweep(exp_dir / "plots" / "temperature.png", sweep, baselines)
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

    spec = _specialists(runs, test_set, primary)
    if spec:
        results["specialists"] = spec
        lines += _specialist_tables(spec, systems)
    seeds = _seeds(runs, ens, primary)
    if seeds:
        results["seeds"] = seeds
        lines += _seed_table(seeds, ens)

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
