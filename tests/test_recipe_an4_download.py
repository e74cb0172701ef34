"""The AN4 recipe end to end (CI config, stages 0-10) on CMU's archive served from 127.0.0.1
(`--download`, so not the shared copy): a tar.gz in an4_sphere.tar.gz's layout made of real
utterances (NIST SPHERE audio), pinned with --sha256; then data dirs, lang, features, a
monophone GMM, the ensemble, both students, decoding and the report.

`--gmm mono` keeps it near a minute on one core (5 processes fewer; tests/test_recipe_an4.py
runs the triphone stages on the whole corpus)."""

from __future__ import annotations

from asr_kd.data import load_data_dir
from tests.conftest import copy_recipe
from tests.test_local_an4 import ARCHIVE, TEST_SPEAKERS, TRAIN_SPEAKERS, serve_archive, utterances
from tests.test_recipe_librispeech import SYSTEMS, check_results, run_ok


def test_an4_recipe_downloads_sphere(http_server, tmp_path):
    root, base = http_server
    sha = serve_archive(root)
    rdir = copy_recipe("an4", tmp_path)
    # As tests/test_recipe_an4.py: the recipe's default speed perturbation, transfer sets and
    # second student shape are not what this test is about and would triple its time.
    proc = run_ok(rdir, "--download", "--url", f"{base}/{ARCHIVE}", "--sha256", sha,
                  "--speed-factors", "", "--transfer-sets", "", "--transfer-speed-factors", "",
                  "--students", "student")

    corpus = rdir / "corpus" / "an4"
    assert (rdir / "corpus.path").read_text().strip() == str(corpus.resolve())
    assert sorted(p.name for p in (rdir / "corpus").iterdir()) == ["an4"]  # archive deleted
    assert f"an4: downloading {base}/{ARCHIVE}" in proc.stderr
    train, test = utterances("train", TRAIN_SPEAKERS), utterances("test", TEST_SPEAKERS)
    tr, te = load_data_dir(rdir / "data/train"), load_data_dir(rdir / "data/test")
    assert len(tr.utts) == len(train) and len(te.utts) == len(test)
    assert all(w.startswith(str(corpus.resolve() / "wav")) and w.endswith(".sph")
               for w in [*tr.wav.values(), *te.wav.values()])
    check_results(rdir, "test", test, SYSTEMS | {"teacher_3"})  # conf_ci: 3 teachers
