"""The AN4 recipe (continuous speech, a trigram LM) end to end on real audio, CI config,
stages 0-10: monophone and tied-triphone GMMs, a small teacher ensemble on the triphone targets,
both students, Table 1. (The sweeps and
Table 5 stages are the FSDD test's; here they would double the suite's time.)"""

from __future__ import annotations

import json
import sys

from tests.conftest import copy_recipe, corpus, decoders_agree, run_recipe


def test_an4_recipe_table1(tmp_path, monkeypatch):
    corpus("an4")
    rdir = copy_recipe("an4", tmp_path)
    proc = run_recipe(rdir, "--device", "cpu", "--conf-dir", "conf_ci", "--stop-stage", "10",
                      timeout=2400)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-5000:])
    assert proc.returncode == 0, "an4 recipe failed"
    results = json.loads((rdir / "exp/results.json").read_text())
    systems = results["systems"]
    assert set(systems) == {"mono", "tri1", "teacher_1", "teacher_2", "teacher_3", "ensemble",
                            "student_hard", "student_kd"}
    for s in systems.values():
        assert " / 773, " in s["kaldi_line"]  # every test word scored
        assert len((rdir / s["hyp"]).read_text().splitlines()) == 130
    # The CI schedule is a quarter of Kaldi's (CI: 12.42%; full schedule: 8.28%; Kaldi's own
    # monophone system: 10.61%).
    assert systems["mono"]["wer"] < 13.0, systems["mono"]["kaldi_line"]
    # The triphone GMM on a third of train_deltas.sh's schedule (CI: 8.02%; Kaldi's tri1: 10.48%)
    assert systems["tri1"]["wer"] < 9.5, systems["tri1"]["kaldi_line"]
    teachers = [systems[f"teacher_{k}"]["frame_acc"] for k in (1, 2, 3)]
    assert systems["ensemble"]["frame_acc"] > max(teachers)
    # One epoch of CI training on 300 tied states leaves the DNNs far from the full run
    # (CI ensemble: 16.82%).
    assert systems["ensemble"]["wer"] < 25.0, systems["ensemble"]["kaldi_line"]
    # The tree reached its target (AN4 has the contexts for it) and the DNNs predict its leaves.
    assert (rdir / "exp/tri1_ali_train/num_pdfs").read_text().strip() == "300"
    # The torch decoder finds the reference decoder's paths on the triphone trigram graph (the
    # GMM here; the DNNs on yesno and FSDD: ours is slow on the CPU).
    assert decoders_agree(rdir, "test", "tri1", monkeypatch) == 130
