"""The results report: one table of every system decoded on a test set.

Reads exp/<system>/decode_<test_set>/scores.json; writes exp/RESULTS.md (for people),
exp/results.json (for programs; the contract later stages and checks read) and
exp/plots/results.png.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from asr_kd.utils.io import atomic_path, write_json, write_text


def collect(exp_dir: Path, test_set: str) -> dict[str, dict]:
    systems = {}
    for path in sorted(exp_dir.glob(f"*/decode_{test_set}/scores.json")):
        s = json.loads(path.read_text())
        systems[s["system"]] = s
    return systems


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def make_report(exp_dir, corpus: str, test_set: str, recipe_dir=".") -> dict:
    exp_dir = Path(exp_dir)
    systems = collect(exp_dir, test_set)
    if not systems:
        raise FileNotFoundError(f"{exp_dir}: no */decode_{test_set}/scores.json to report")
    rel = {n: os.path.relpath(s["hyp"], recipe_dir) for n, s in systems.items()}
    results = {"corpus": corpus, "test_set": test_set, "systems": {
        n: {"wer": s["wer"], "frame_acc": s["frame_acc"], "params": s["params"], "hyp": rel[n],
            "kaldi_line": s["kaldi_line"]} for n, s in systems.items()}}
    write_json(exp_dir / "results.json", results)

    lines = [f"# Results: {corpus}, {test_set}", "",
             "| system | WER % | errors | frame acc % | params | decode RTFx |",
             "|---|---|---|---|---|---|"]
    for n, s in systems.items():
        det = s["wer_detail"]
        lines.append(f"| {n} | {s['wer']:.2f} | {det['errors']} / {det['words']} "
                     f"({det['ins']} ins, {det['dels']} del, {det['subs']} sub) | "
                     f"{_fmt(s['frame_acc'], '.2f')} | {s['params']:,} | "
                     f"{_fmt(s.get('search_rtfx'), '.0f')} |")
    lines += ["", "Kaldi-format lines:", "", "```"]
    lines += [f"{n}: {s['kaldi_line']}" for n, s in systems.items()]
    lines += ["```", ""]
    table = "\n".join(lines)
    write_text(exp_dir / "RESULTS.md", table)
    _plot(exp_dir / "plots" / "results.png", systems, corpus, test_set)
    return {"results": results, "markdown": table}


def _plot(path: Path, systems: dict, corpus: str, test_set: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(systems)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    axes[0].bar(names, [systems[n]["wer"] for n in names], color="tab:red")
    axes[0].set_ylabel("WER %")
    accs = [systems[n]["frame_acc"] or 0.0 for n in names]
    axes[1].bar(names, accs, color="tab:blue")
    axes[1].set_ylabel("frame accuracy %")
    fig.suptitle(f"{corpus} — {test_set}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
