"""local/yesno.py: preparation from the real corpus, and the download path over real HTTP."""

from __future__ import annotations

import functools
import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from asr_kd.data import load_data_dir
from asr_kd.utils.archive import download, safe_extract, sha256sum
from local import yesno

REPO = Path(__file__).resolve().parents[1]

CORPUS = yesno.SHARED_CORPUS_DIR
if not (CORPUS / "waves_yesno").is_dir():
    pytest.skip(f"yesno corpus not found at {CORPUS}", allow_module_level=True)
SOME = ["0_0_0_0_1_1_1_1", "0_0_0_1_0_0_0_1", "1_0_0_0_0_0_0_1"]


def test_prepare_real_corpus(tmp_path):
    data = tmp_path / "data"
    paths = yesno.prepare_yesno(CORPUS, data)
    train, test = load_data_dir(paths["train"]), load_data_dir(paths["test"])
    assert len(train.utts) == 31 and len(test.utts) == 29
    assert sum(len(w) for w in test.text.values()) == 232
    for d in (train, test):
        assert set(d.spk2utt) == {"yesno"}
        for utt in d.utts:
            stem = utt.removeprefix("yesno_")
            assert d.text[utt] == ["YES" if c == "1" else "NO" for c in stem.split("_")]
            assert d.wav[utt] == str((CORPUS / "waves_yesno" / f"{stem}.wav").resolve())
    assert all(u.startswith("yesno_0_") for u in train.utts)
    assert all(u.startswith("yesno_1_") for u in test.utts)

    dct = data / "local" / "dict"
    assert (dct / "lexicon.txt").read_text().split("\n")[:3] == ["<SIL> SIL", "NO N", "YES Y"]
    assert (dct / "nonsilence_phones.txt").read_text() == "Y\nN\n"
    assert (dct / "silence_phones.txt").read_text() == "SIL\n"
    assert (dct / "optional_silence.txt").read_text() == "SIL\n"

    # Kaldi's own yesno LM (input/task.arpabo): every word and </s> at log10 p = -1.
    arpa = (data / "local" / "lm.arpa").read_text()
    probs = {ln.split("\t")[1]: float(ln.split("\t")[0]) for ln in arpa.splitlines() if "\t" in ln}
    assert "ngram 1=4" in arpa and arpa.rstrip().endswith("\\end\\")
    assert probs == {"<s>": -99, "</s>": -1, "YES": -1, "NO": -1}
    for d in ("train_yesno", "test_yesno", "local", "local/dict"):
        assert (data / d / ".done").exists()

    # Done: a rerun leaves outputs alone unless forced.
    (paths["lm"]).write_text("stale\n")
    yesno.prepare_yesno(CORPUS, data)
    assert paths["lm"].read_text() == "stale\n"
    yesno.prepare_yesno(CORPUS, data, force=True)
    assert paths["lm"].read_text() == arpa


def test_cli_runs_as_module(tmp_path):
    """The recipe runs `python -m local.yesno ...` from its own dir, the checkout on PYTHONPATH
    (recipes/common/options.sh's local_py); asr_kd may not be installed."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-m", "local.yesno", "download", "--corpus-dir", str(CORPUS), "--dest",
         "corpus"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == str(CORPUS.resolve())
    assert not (tmp_path / "corpus").exists()  # existing copy used in place, nothing copied
    subprocess.run(
        [
            sys.executable,
            "-m",
            "local.yesno",
            "prepare",
            "--corpus-dir",
            out.stdout.strip(),
            "--data-dir",
            "data",
        ],
        cwd=tmp_path,
        env=env,
        check=True,
    )
    assert len(load_data_dir(tmp_path / "data" / "test_yesno").utts) == 29


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serve tmp_path/srv over HTTP on 127.0.0.1 (an ephemeral port), bypassing any proxy."""
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    root = tmp_path / "srv"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def make_tarball(path: Path, extra: list[tarfile.TarInfo] = ()) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for stem in SOME:
            tf.add(CORPUS / "waves_yesno" / f"{stem}.wav", arcname=f"waves_yesno/{stem}.wav")
        for info in extra:
            tf.addfile(info, io.BytesIO(b"x" * info.size))
    return path


def run_download(url: str, dest: Path, sha: str, tmp_path: Path) -> int:
    return yesno.main(
        [
            "download",
            "--corpus-dir",
            str(tmp_path / "absent"),
            "--url",
            url,
            "--sha256",
            sha,
            "--dest",
            str(dest),
            "--no-progress",
        ]
    )


def test_download_extracts_and_marks(server, tmp_path, capsys):
    root, base = server
    sha = sha256sum(make_tarball(root / "waves_yesno.tar.gz"))
    dest = tmp_path / "corpus"
    assert run_download(f"{base}/waves_yesno.tar.gz", dest, sha, tmp_path) == 0
    assert capsys.readouterr().out.strip() == str(dest.resolve())
    for stem in SOME:
        got = dest / "waves_yesno" / f"{stem}.wav"
        assert got.read_bytes() == (CORPUS / "waves_yesno" / f"{stem}.wav").read_bytes()
    assert (dest / ".completed").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp dirs

    # Marker present: no network needed the second time.
    (root / "waves_yesno.tar.gz").unlink()
    assert run_download(f"{base}/waves_yesno.tar.gz", dest, sha, tmp_path) == 0


def test_default_checksum_is_openslrs(server, tmp_path):
    # Without --sha256 the archive is checked against OpenSLR's: our home-made tarball fails it.
    root, base = server
    real = sha256sum(make_tarball(root / "waves_yesno.tar.gz"))
    url = f"{base}/waves_yesno.tar.gz"
    with pytest.raises(ValueError) as e:
        yesno.download_yesno(tmp_path / "corpus", corpus_dir=tmp_path / "absent", url=url,
                             progress=False)
    assert str(e.value) == (f"{url}: checksum mismatch: expected {yesno.YESNO_SHA256}, "
                            f"got {real}")
    assert not (tmp_path / "corpus").exists()


def test_wrong_checksum_leaves_nothing(server, tmp_path, capsys):
    root, base = server
    real = sha256sum(make_tarball(root / "waves_yesno.tar.gz"))
    url, bad = f"{base}/waves_yesno.tar.gz", "0" * 64
    dest = tmp_path / "corpus"
    assert run_download(url, dest, bad, tmp_path) == 1
    err = capsys.readouterr().err
    assert f"error: {url}: checksum mismatch: expected {bad}, got {real}\n" in err
    assert not dest.exists()

    # download() itself: exact message, and an existing directory keeps only what it had.
    dest.mkdir()
    with pytest.raises(ValueError) as e:
        download(url, dest / "a.tar.gz", bad, progress=False)
    assert str(e.value) == f"{url}: checksum mismatch: expected {bad}, got {real}"
    assert list(dest.iterdir()) == []


def test_truncated_archive_leaves_nothing(server, tmp_path, capsys):
    root, base = server
    full = make_tarball(tmp_path / "full.tar.gz").read_bytes()
    trunc = root / "waves_yesno.tar.gz"
    trunc.write_bytes(full[: len(full) // 2])
    dest = tmp_path / "corpus"
    assert run_download(f"{base}/waves_yesno.tar.gz", dest, sha256sum(trunc), tmp_path) == 1
    err = capsys.readouterr().err
    assert "waves_yesno.tar.gz: cannot extract (damaged or truncated archive?)" in err
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _member(name: str, kind=tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize("name", ["../evil", "ABS"])
def test_escaping_members_refused(server, tmp_path, capsys, name):
    root, base = server
    if name == "ABS":
        name = str(tmp_path / "abs_evil")
    archive = make_tarball(root / "waves_yesno.tar.gz", [_member(name)])
    with tarfile.open(archive) as tf:
        assert tf.getnames()[-1] == name  # the hostile name really is in the archive
    dest = tmp_path / "corpus"
    assert run_download(f"{base}/waves_yesno.tar.gz", dest, sha256sum(archive), tmp_path) == 1
    err = capsys.readouterr().err
    assert f"member '{name}'" in err
    assert not dest.exists()
    assert not (tmp_path / "evil").exists() and not (tmp_path / "abs_evil").exists()


@pytest.mark.parametrize(
    "member, problem",
    [
        (
            _member("w/link", tarfile.SYMTYPE, "../../outside"),
            "link target '../../outside' is outside",
        ),
        (_member("w/link", tarfile.SYMTYPE, "/etc/passwd"), "link to absolute path '/etc/passwd'"),
        (_member("w/hard", tarfile.LNKTYPE, "../x"), "link target '../x' is outside"),
        (_member("w/dev", tarfile.CHRTYPE), "device or special file refused"),
    ],
)
def test_safe_extract_refuses_links_and_devices(tmp_path, member, problem):
    archive = make_tarball(tmp_path / "a.tar.gz", [member])
    with pytest.raises(ValueError) as e:
        safe_extract(archive, tmp_path / "out")
    assert str(e.value).startswith(f"{archive}: member '{member.name}': {problem}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz"]


def test_safe_extract_zip_and_inside_links(tmp_path):
    ok = tmp_path / "ok.zip"
    with zipfile.ZipFile(ok, "w") as zf:
        zf.writestr("d/a.txt", "hello")
    assert (safe_extract(ok, tmp_path / "out") / "d" / "a.txt").read_text() == "hello"
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(ValueError, match=r"evil.zip: member '../evil.txt': path escapes"):
        safe_extract(evil, tmp_path / "out2")
    assert not (tmp_path / "out2").exists() and not (tmp_path / "evil.txt").exists()

    # A symlink that stays inside the tree is fine; extraction into an existing dir merges.
    archive = make_tarball(
        tmp_path / "in.tar.gz",
        [_member("waves_yesno/latest.wav", tarfile.SYMTYPE, f"{SOME[0]}.wav")],
    )
    out = safe_extract(archive, tmp_path / "out")
    assert (out / "waves_yesno" / "latest.wav").is_symlink()
    assert (out / "d" / "a.txt").exists()
