"""VTLN: Kaldi's warped mel banks (against kaldi-native-fbank), features at a warp (a pure
tone's peak band against the closed form), `asr-kd perturb-vtln` copies, spk2warp/utt2warp."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asr_kd.cli import main
from asr_kd.data import (
    DataDirError,
    iter_utterance_audio,
    load_data_dir,
    perturb_speed,
    perturb_vtln,
    validate_data_dir,
    write_data_dir,
)
from asr_kd.data.fix import drop_bad
from asr_kd.features import FbankConfig, fbank, fbank_utterances, mel_banks, read_scp_matrices
from asr_kd.features.fbank import check_warp
from asr_kd.train.trainer import original_utt
from tests.test_perturb_speed import restore_logging, tone, yesno_dir  # noqa: F401

WARPS = (0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2)


@pytest.mark.parametrize("sr, bins", [(16000, 40), (8000, 23)])
def test_warped_mel_banks_match_knf(sr, bins):
    knf = pytest.importorskip("kaldi_native_fbank")
    mel_opts, frame_opts = knf.MelBanksOptions(), knf.FrameExtractionOptions()
    mel_opts.num_bins, frame_opts.samp_freq = bins, sr
    cfg = FbankConfig(sample_rate=sr, num_mel_bins=bins)
    for warp in WARPS:
        ref = np.array(knf.MelBanks(mel_opts, frame_opts, warp).get_matrix())  # [M, N/2 + 1]
        assert np.abs(mel_banks(cfg, warp).T - ref).max() < 3e-6, warp
    assert not np.allclose(mel_banks(cfg, 0.9), mel_banks(cfg, 1.0))


def test_a_tone_at_warp_a_looks_like_a_tone_a_times_higher():
    """Between the cut-offs the warp maps f to f / a, so band m's centre moves from c_m to
    c_m / a: a tone at f lands in the band that a tone at a * f fills without a warp."""
    cfg = FbankConfig(sample_rate=16000, num_mel_bins=40)
    t = torch.arange(16000) / 16000

    def peak_band(freq: float, warp: float) -> int:
        x = 0.5 * 32767 * torch.sin(2 * torch.pi * freq * t)
        feats, _ = fbank(x[None], torch.tensor([len(x)]), cfg, warps=[warp])
        return int(feats[0].mean(0).argmax())

    for freq in (500.0, 1000.0, 2000.0, 3000.0):
        for warp in (0.8, 0.9, 1.1, 1.2):
            assert peak_band(freq, warp) == peak_band(warp * freq, 1.0), (freq, warp)
    assert peak_band(2000.0, 1.2) > peak_band(2000.0, 1.0) > peak_band(2000.0, 0.8)


def test_a_batch_of_mixed_warps_equals_each_utterance_alone():
    cfg = FbankConfig(sample_rate=16000, num_mel_bins=40)
    gen = torch.Generator().manual_seed(0)
    waves = [1000 * torch.randn(n, generator=gen) for n in (16000, 9000, 12345, 4000)]
    warps = [0.9, 1.0, 1.1, 0.9]
    together = fbank_utterances(waves, cfg, warps=warps)
    plain = fbank_utterances(waves, cfg)
    for x, w, got, unwarped in zip(waves, warps, together, plain):
        alone = fbank_utterances([x], cfg, warps=[w])[0]
        assert torch.equal(got, alone)
        assert torch.equal(got, unwarped) == (w == 1.0)


def test_warps_outside_the_mel_range_are_refused():
    check_warp(FbankConfig(sample_rate=8000, num_mel_bins=23), 1.2)
    cfg = FbankConfig(sample_rate=8000, num_mel_bins=23, low_freq=150)  # above vtln-low
    check_warp(cfg, 1.0)  # no warp: no cut-offs
    for warp, msg in ((0.0, "VTLN warp factor 0.0 is not a positive number"),
                      (0.9, "VTLN warp factor 0.9: its cut-offs 100 and 3150 Hz must lie inside "
                            "the mel range (150, 4000 Hz)"),
                      (1.2, "VTLN warp factor 1.2: its cut-offs 120 and 3500 Hz must lie inside "
                            "the mel range (150, 4000 Hz)")):
        with pytest.raises(ValueError) as e:
            mel_banks(cfg, warp)
        assert str(e.value) == msg


def test_perturb_vtln_cli_then_features(tmp_path, capsys, restore_logging):  # noqa: F811
    src, out = yesno_dir(tmp_path), tmp_path / "vtln"
    assert main(["perturb-vtln", str(src), str(out), "--factors", "0.9", "1.1",
                 "--copies-only"]) == 0
    assert capsys.readouterr().out.strip().endswith(": 6 utterances, 4 speakers, warps 0.9 1.1")
    s, d = load_data_dir(src), load_data_dir(out)
    assert d.utts == sorted(f"vtln{f}-{u}" for f in ("0.9", "1.1") for u in s.utts)
    assert (out / "spk2warp").read_text() == "vtln0.9-a 0.9\nvtln0.9-b 0.9\nvtln1.1-a 1.1\n" \
                                             "vtln1.1-b 1.1\n"
    assert not (out / "reco2speed").exists()
    assert (out / "utt2dur").read_text().splitlines()[0].split()[1] == \
        (src / "utt2dur").read_text().splitlines()[0].split()[1]  # the same audio, same length
    for u in s.utts:
        assert d.wav[f"vtln0.9-{u}"] == s.wav[u] and d.text[f"vtln1.1-{u}"] == s.text[u]

    conf = tmp_path / "fbank.yaml"
    conf.write_text("sample_rate: 8000\nnum_mel_bins: 23\n")
    for data in (src, out):
        assert main(["compute-feats", str(data), "--config", str(conf), "--device", "cpu"]) == 0
    ref, feats = read_scp_matrices(src / "feats.scp"), read_scp_matrices(out / "feats.scp")
    cfg = FbankConfig(sample_rate=8000, num_mel_bins=23)
    audio = {u: x for u, x, _ in iter_utterance_audio(s)}
    for u in s.utts:
        for f in (0.9, 1.1):
            got = feats[f"vtln{f:g}-{u}"]
            assert got.shape == ref[u].shape
            want = fbank_utterances([audio[u]], cfg, warps=[f])[0].numpy()
            np.testing.assert_array_equal(got, want)
            assert np.abs(got - ref[u]).mean() > 0.05

    # Composed: speed copies of the VTLN copies keep their warps; VTLN copies of speed copies
    # keep their speeds; two warps multiply.
    sp = perturb_speed(out, tmp_path / "vtln_sp", [1.2], copies_only=True)
    assert sp.warp_of("sp1.2-vtln0.9-" + s.utts[0]) == 0.9
    assert sp.speed_of(sp.recording_of("sp1.2-vtln0.9-" + s.utts[0])) == 1.2
    v2 = perturb_vtln(tmp_path / "vtln_sp", tmp_path / "vtln2", [1.1])
    assert v2.warp_of("vtln1.1-sp1.2-vtln0.9-" + s.utts[0]) == pytest.approx(0.99)
    assert v2.speed_of(v2.recording_of("vtln1.1-sp1.2-vtln0.9-" + s.utts[0])) == 1.2


def _one_tone_dir(tmp_path):
    wav = tone(tmp_path / "a440.wav", [440.0])
    d = tmp_path / "src"
    write_data_dir(d, {"s1_a": str(wav), "s2_b": str(wav)}, {"s1_a": "A", "s2_b": "B"},
                   {"s1_a": "s1", "s2_b": "s2"})
    return d


@pytest.mark.parametrize("name, line, problem", [
    ("spk2warp", "s2 wide", "speaker 's2': warp 'wide' is not a number"),
    ("spk2warp", "s2 -0.9", "speaker 's2': warp -0.9 is not a positive number"),
    ("spk2warp", "s3 0.9", "speaker 's3': speaker is not in utt2spk"),
    ("utt2warp", "s2_b 0.9 1.1", "utterance 's2_b': expected '<utterance> <warp factor>'"),
])
def test_a_bad_warp_line_is_named(tmp_path, name, line, problem):
    d = _one_tone_dir(tmp_path)
    (d / name).write_text(f"{'s1' if name == 'spk2warp' else 's1_a'} 1.1\n{line}\n")
    with pytest.raises(DataDirError) as e:
        load_data_dir(d)
    assert str(e.value) == f"{d}/{name}:2: {problem}"

    # validate-data reports it; --drop-bad drops what a bad factor would have warped, and
    # rewrites a file with a line for no speaker.
    v = validate_data_dir(d)
    assert [str(p) for p in v.problems] == [str(e.value)]
    _, kept, dropped = drop_bad(v)
    assert list(dropped) == ([] if "not in utt2spk" in problem else ["s2_b"])
    first = f"{'s1' if name == 'spk2warp' else 's1_a'} 1.1\n"
    assert (d / name).read_text() == first
    assert load_data_dir(d).utt2warp == {"s1_a": 1.1}


def test_warps_from_spk2warp_else_utt2warp(tmp_path):
    d = _one_tone_dir(tmp_path)
    (d / "utt2warp").write_text("s1_a 0.9\ns2_b 1.1\n")
    assert load_data_dir(d).utt2warp == {"s1_a": 0.9, "s2_b": 1.1}
    (d / "spk2warp").write_text("s1 1.05\n")  # Kaldi's make_fbank.sh reads it first
    assert load_data_dir(d).utt2warp == {"s1_a": 1.05}
    # perturb-vtln gives each copy's speaker one warp: utterances of a speaker that differ stop it
    (d / "spk2warp").unlink()
    write_data_dir(d, {"s1_a": str(tmp_path / "a440.wav"), "s1_b": str(tmp_path / "a440.wav")},
                   {"s1_a": "A", "s1_b": "B"}, {"s1_a": "s1", "s1_b": "s1"})
    (d / "utt2warp").write_text("s1_a 0.9\ns1_b 1.1\n")
    with pytest.raises(DataDirError, match=r"utt2warp:2: utterance 's1_b': the utterances of "
                                           r"speaker 's1' have different warp factors"):
        perturb_vtln(d, tmp_path / "out", [1.1])
    assert not (tmp_path / "out").exists()


def test_a_warp_the_fbank_cannot_take_names_the_utterance(tmp_path, capsys, restore_logging):  # noqa: F811
    d = _one_tone_dir(tmp_path)
    (d / "spk2warp").write_text("s2 0.9\n")
    conf = tmp_path / "fbank.yaml"
    conf.write_text("sample_rate: 16000\nlow_freq: 150\n")
    assert main(["compute-feats", str(d), "--config", str(conf), "--device", "cpu"]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "asr-kd compute-feats: error: utterance 's2_b': VTLN warp factor 0.9: its cut-offs 100 "
        "and 6750 Hz must lie inside the mel range (150, 8000 Hz)")
    assert not (d / "feats.scp").exists()


def test_every_copy_of_an_utterance_goes_with_it():
    """A student leaves out of its transfer sets the copies of its validation utterances:
    speed and VTLN copies, however composed."""
    for utt in ("s1_a", "sp0.9-s1_a", "vtln1.1-s1_a", "vtln0.9-sp1.1-s1_a", "sp1.2-vtln0.9-s1_a"):
        assert original_utt(utt) == "s1_a", utt
    assert original_utt("spx-s1_a") == "spx-s1_a"
