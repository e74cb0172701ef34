"""The results report: every system decoded on a test set, and the distillation experiments.

Reads exp/<system>/decode_<test_set>/scores.json (Table 1), exp/sweep/<run>/ (temperature and
alpha sweep), exp/share/<run>/ (Table 5: students on a share of the training data),
exp/specialists/ (stage 13: a generalist with specialists, and its coverage table) and
exp/seeds/{hard,kd}_s<seed>/ (stage 14: the student pair with other seeds); writes
exp/RESULTS.md (for people), exp/results.json (for programs; the contract later stages and
checks read) and plots under exp/plots/.

`kept` is the share of the ensemble's frame-accuracy gain over the hard-target student that the
distilled student keeps: (student_kd - student_hard) / (ensemble - student_hard); the paper's
is (60.8 - 58.9) / (61.1 - 58.9) = 0.86. `kept_by_student` gives it for every student config
of stage 7 (student_tdnn_hard / student_tdnn_kd, ...). One pair's `kept` is as noisy as the
students' seed-to-seed spread against the ensemble's gain; `seeds` gives it per seed, with the
mean, the sample standard deviation, and `kept` of the mean accuracies.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import yaml

from asr_kd.utils.io import atomic_path, write_json, write_text


def _scores(run_dirs, test_set: str) -> dict[str, dict]:
    out = {}
    for d in run_dirs:
        path = d / f"decode_{test_set}" / "scores.json"
        if path.exists():
            out[d.name] = json.loads(path.read_text())
    return out


def _student_pairs(names) -> list[str]:
    """Student configs with both runs: "student" for student_hard/_kd, "student_tdnn" for
    student_tdnn_hard/_kd, ...; "student" first."""
    pairs = {n[:-5] for n in names if n.startswith("student") and n.endswith("_hard")}
    pairs = [p for p in pairs if f"{p}_kd" in names]
    return sorted(pairs, key=lambda p: (p != "student", p))


def _system_order(name: str):
    """The GMMs (mono, tri1) first, then teacher_1..teacher_E by number, ensemble, the students
    (the recipe's own student first, each as hard then kd), the rest."""
    if name.startswith("teacher_") and name[8:].isdigit():
        return (1, int(name[8:]), "")
    if name.startswith("student") and name.endswith(("_hard", "_kd")):
        prefix, kind = name.rsplit("_", 1)
        return (3, prefix != "student", prefix + ("0" if kind == "hard" else "1"))
    rank = {"mono": 0, "tri1": 0, "ensemble": 2}
    return (rank.get(name, 5), 0, name)


def kept_share(systems: dict, student: str = "student") -> float | None:
    """(S_kd - S_hard) / (ensemble - S_hard) in frame accuracy, for student config S."""
    try:
        kd, hard, ens = (systems[n]["frame_acc"] for n in (f"{student}_kd", f"{student}_hard",
                                                            "ensemble"))
    except KeyError:
        return None
    return _kept(kd, hard, ens)


def _kept(kd, hard, ens) -> float | None:
    """(kd - hard) / (ens - hard) from frame accuracies; None where one is missing or the
    ensemble ties the hard-target student."""
    if None in (kd, hard, ens) or ens == hard:
        return None
    return round((kd - hard) / (ens - hard), 4)


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def _table1(systems: dict, kept: dict) -> list[str]:
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
    for s, k in kept.items():
        if k is not None:
            lines.append(f"kept = ({s}_kd - {s}_hard) / (ensemble - {s}_hard) in frame "
                         f"accuracy = **{k:.2f}** (paper: 0.86)  ")
    return lines


def _run_info(run_dir: Path) -> dict:
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    hist = json.loads((run_dir / "history.json").read_text())
    train_eval = run_dir / "train_eval.json"
    return {"cfg": cfg, "history": hist,
            "train": json.loads(train_eval.read_text()) if train_eval.exists() else None}


def _sweep(exp_dir: Path, test_set: str) -> list[dict]:
    rows = []
    for name, s in _scores(sorted((exp_dir / "sweep").glob("*")), test_set).items():
        cfg = _run_info(exp_dir / "sweep" / name)["cfg"]["distill"]
        rows.append({"run": name, "temperature": cfg["temperature"], "alpha": cfg["alpha"],
                     "frame_acc": s["frame_acc"], "wer": s["wer"]})
    return sorted(rows, key=lambda r: (r["alpha"], r["temperature"]))


def _share(exp_dir: Path, test_set: str) -> list[dict]:
    rows = []
    for name, s in _scores(sorted((exp_dir / "share").glob("*")), test_set).items():
        info = _run_info(exp_dir / "share" / name)
        rows.append({"run": name, "targets": "soft" if info["cfg"]["distill"]["alpha"] > 0
                     else "hard", "percent": round(100 * info["cfg"]["utt_fraction"], 2),
                     "utts": info["train"]["utts"], "pdfs_seen": info["train"]["pdfs_seen"],
                     "train_frame_acc": info["train"]["frame_acc"],
                     "test_frame_acc": s["frame_acc"], "wer": s["wer"],
                     "valid_acc_by_epoch": [h["members"][0]["valid_acc"]
                                            for h in info["history"]],
                     "train_acc_by_epoch": [h["members"][0]["train_acc"]
                                            for h in info["history"]]})
    return sorted(rows, key=lambda r: (r["percent"], r["targets"]))


def _seeds(exp_dir: Path, test_set: str, systems: dict) -> dict | None:
    """Stage 14's figures: kept for stage 7's student pair and for each exp/seeds pair."""
    if "ensemble" not in systems or not (exp_dir / "seeds").is_dir():
        return None
    ens = systems["ensemble"]["frame_acc"]
    pairs = {}  # seed -> (hard scores, kd scores)
    if "student_hard" in systems and "student_kd" in systems:
        seed = _run_info(exp_dir / "student_kd")["cfg"]["seed"]
        pairs[seed] = systems["student_hard"], systems["student_kd"]
    runs = _scores(sorted((exp_dir / "seeds").glob("*")), test_set)
    for name in runs:  # kd_s101 beside hard_s101
        if name.startswith("kd_s") and f"hard_{name[3:]}" in runs:
            pairs[int(name[4:])] = runs[f"hard_{name[3:]}"], runs[name]
    if len(pairs) < 2:
        return None
    rows = [{"seed": seed, "hard": h["frame_acc"], "kd": k["frame_acc"], "hard_wer": h["wer"],
             "kd_wer": k["wer"], "kept": _kept(k["frame_acc"], h["frame_acc"], ens)}
            for seed, (h, k) in sorted(pairs.items())]
    kept = [r["kept"] for r in rows if r["kept"] is not None]
    mean = round(statistics.fmean(kept), 4) if kept else None
    std = round(statistics.stdev(kept), 4) if len(kept) > 1 else None
    accs = [(r["hard"], r["kd"]) for r in rows if None not in (r["hard"], r["kd"])]
    hard, kd = (sum(a) / len(accs) for a in zip(*accs)) if accs else (None, None)
    return {"rows": rows, "kept_mean": mean, "kept_std": std, "kept_of_means": _kept(kd, hard, ens)}


def _seed_table(seeds: dict, systems: dict) -> list[str]:
    lines = ["## kept over student seeds", "",
             f"The student pair (hard targets, distilled) with {len(seeds['rows'])} seeds; "
             f"ensemble {_fmt(systems['ensemble']['frame_acc'], '.2f')} % frame accuracy.", "",
             "| seed | student_hard acc % | student_kd acc % | kept | student_hard WER % | "
             "student_kd WER % |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {_fmt(r['hard'], '.2f')} | {_fmt(r['kd'], '.2f')} | "
              f"{_fmt(r['kept'], '.2f')} | {r['hard_wer']:.2f} | {r['kd_wer']:.2f} |"
              for r in seeds["rows"]]
    return lines + ["", f"kept: mean **{_fmt(seeds['kept_mean'], '.2f')}**, standard deviation "
                        f"{_fmt(seeds['kept_std'], '.2f')}; of the mean accuracies "
                        f"{_fmt(seeds['kept_of_means'], '.2f')} (paper: 0.86)", ""]


def _specialists(exp_dir: Path, test_set: str, systems: dict) -> dict | None:
    """Stage 13's figures: clusters, the generalist's name, the coverage breakdown."""
    path = exp_dir / "specialists" / f"decode_{test_set}" / "coverage.json"
    if not path.exists() or "specialists" not in systems:
        return None
    cfg = yaml.safe_load((exp_dir / "specialists" / "config.yaml").read_text())
    clusters = json.loads((exp_dir / "specialists" / "clusters.json").read_text())["clusters"]
    generalist = json.loads((exp_dir / "specialists" / "generalist.json").read_text())
    return {"generalist": generalist["system"], "clusters": len(clusters),
            "cluster_size": cfg["cluster_size"], "top_n": cfg["top_n"],
            "pdfs_covered": len({p for c in clusters for p in c}),
            "coverage": json.loads(path.read_text())["rows"]}


def _specialist_tables(spec: dict, systems: dict) -> list[str]:
    g = spec["generalist"]
    names = [n for n in (g, "specialists", "student_spec", "student_kd", "student_hard")
             if n in systems]
    lines = ["## Specialists (paper section 5)", "",
             f"Generalist `{g}` plus {spec['clusters']} specialists of {spec['cluster_size']} "
             f"pdfs each ({spec['pdfs_covered']} pdfs covered); a frame's active specialists "
             f"are those covering one of the generalist's top {spec['top_n']} pdfs. "
             f"`student_spec` is distilled from the combination.", "",
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


def make_report(exp_dir, corpus: str, test_set: str, recipe_dir=".") -> dict:
    exp_dir = Path(exp_dir)
    systems = _scores(sorted((p for p in exp_dir.glob("*") if p.is_dir()),
                             key=lambda p: _system_order(p.name)), test_set)
    if not systems:
        raise FileNotFoundError(f"{exp_dir}: no */decode_{test_set}/scores.json to report")
    kept = {s: kept_share(systems, s) for s in _student_pairs(systems)}
    results = {"corpus": corpus, "test_set": test_set, "systems": {
        n: {"wer": s["wer"], "frame_acc": s["frame_acc"], "params": s["params"],
            "flops_per_frame": s.get("flops_per_frame"),
            "hyp": os.path.relpath(s["hyp"], recipe_dir), "kaldi_line": s["kaldi_line"],
            "score_map": s.get("score_map") and os.path.relpath(s["score_map"], recipe_dir)}
        for n, s in systems.items()}, "kept": kept.get("student"), "kept_by_student": kept}
    lines = [f"# Results: {corpus}, {test_set}", "", "## Table 1: every system", ""]
    lines += _table1(systems, kept)
    maps = sorted({s["score_map"] for s in results["systems"].values()} - {None})
    if maps:  # e.g. TIMIT: 48 phones folded to 39, the WER a phone error rate
        lines += ["", f"Scored after mapping the tokens of references and hypotheses with "
                      f"{', '.join(f'`{m}`' for m in maps)}."]
    lines += ["", "Kaldi-format lines:", "", "```"]
    lines += [f"{n}: {s['kaldi_line']}" for n, s in systems.items()]
    lines += ["```", ""]
    _plot_systems(exp_dir / "plots" / "results.png", systems, f"{corpus} — {test_set}")

    sweep = _sweep(exp_dir, test_set)
    if sweep:
        results["sweep"] = sweep
        lines += ["## Temperature and alpha sweep (student_kd's model and schedule)", "",
                  "| T | alpha | frame acc % | WER % |", "|---|---|---|---|"]
        lines += [f"| {r['temperature']:g} | {r['alpha']:g} | {_fmt(r['frame_acc'], '.2f')} | "
                  f"{r['wer']:.2f} |" for r in sweep]
        lines.append("")
        _plot_sweep(exp_dir / "plots" / "temperature.png", sweep, systems)
    share = _share(exp_dir, test_set)
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

    spec = _specialists(exp_dir, test_set, systems)
    if spec:
        results["specialists"] = spec
        lines += _specialist_tables(spec, systems)
    seeds = _seeds(exp_dir, test_set, systems)
    if seeds:
        results["seeds"] = seeds
        lines += _seed_table(seeds, systems)

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


def _plot_sweep(path: Path, sweep: list[dict], systems: dict) -> None:
    plt, fig, ax = _figure(1, 5.0)
    for alpha in sorted({r["alpha"] for r in sweep}):
        rows = [r for r in sweep if r["alpha"] == alpha]
        if len(rows) > 1:
            ax.plot([r["temperature"] for r in rows], [r["frame_acc"] for r in rows], "o-",
                    label=f"student, alpha {alpha:g}")
        else:
            ax.plot(rows[0]["temperature"], rows[0]["frame_acc"], "s",
                    label=f"student, alpha {alpha:g}")
    for name, style in (("ensemble", "k--"), ("student_hard", "r:")):
        if name in systems and systems[name]["frame_acc"] is not None:
            ax.axhline(systems[name]["frame_acc"], linestyle=style[1:], color=style[0],
                       label=name)
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
