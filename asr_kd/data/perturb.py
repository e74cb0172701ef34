"""Speed and VTLN perturbation of a data dir, with no audio written (`asr-kd perturb-speed`,
`asr-kd perturb-vtln`).

    asr-kd perturb-speed data/train data/train_sp --factors 0.9 1.1
    asr-kd perturb-vtln data/train data/train_vtln --factors 0.9 1.1 --copies-only

As Kaldi's utils/data/perturb_data_dir_speed_3way.sh: OUT holds the original utterances
unchanged and, per factor f, a copy whose utterance, recording and speaker ids start with
`sp{f}-` (`sp0.9-s1_utt1` of speaker `sp0.9-s1`). A copy's wav.scp entries are the source's
paths or pipes, unchanged; `reco2speed` (`<rec> <f>`) tells `iter_utterance_audio` to read them
at speed f, as sox's `speed f` does (pitch and tempo both change; N samples become N/f). Times
are on the perturbed axis: segments, utt2dur and reco2dur are divided by f. Transcripts,
genders and (Kaldi's utt2uniq) the utterance each copy was made from are carried over.

perturb-vtln makes its copies (`vtln{f}-`) the same way, with the audio, its speed and its times
unchanged: `spk2warp` gives each copy's speaker the warp factor f (times the source's own) of
the mel filterbank, which moves the formants as a vocal tract 1/f times as long would (Kaldi's
VTLN warp; Jaitly & Hinton's vocal tract length perturbation). A source's warps (spk2warp or
utt2warp) carry over to its speed copies.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from asr_kd.data.datadir import (
    DataDir,
    DataDirError,
    data_error,
    load_data_dir,
    read_table,
    write_data_dir,
)
from asr_kd.utils.io import clear_done, mark_done, write_lines

log = logging.getLogger(__name__)

# The files made again for every copy beside those of write_data_dir, with what their keys are
# and whether their values are durations (divided by the factor).
EXTRA_FILES = {"utt2dur": ("utt", True), "reco2dur": ("rec", True),
               "spk2gender": ("spk", False), "utt2uniq": ("utt", False)}


def speed_prefix(factor: float) -> str:
    """The id prefix of a copy at speed `factor`: Kaldi's `sp0.9-`."""
    return f"sp{factor:g}-"


def vtln_prefix(factor: float) -> str:
    """The id prefix of a copy at VTLN warp `factor`: `vtln0.9-`."""
    return f"vtln{factor:g}-"


def check_factors(factors, kind: str = "speed") -> list[float]:
    """The factors of the perturbed copies, sorted, without 1 (the originals) and repeats.

    Raises ValueError for a factor that is not a positive number, or two whose id prefixes
    would be the same.
    """
    prefix = speed_prefix if kind == "speed" else vtln_prefix
    by_prefix = {prefix(1.0): 1.0}
    for f in map(float, factors):
        if not (math.isfinite(f) and f > 0):
            raise ValueError(f"{kind} factor {f:g} is not a positive number")
        if by_prefix.setdefault(prefix(f), f) != f:
            raise ValueError(f"{kind} factors {by_prefix[prefix(f)]!r} and {f!r} would "
                             f"both be named '{prefix(f)}'")
    return sorted(f for f in by_prefix.values() if f != 1.0)


def _speaker_warps(d: DataDir) -> dict[str, float]:
    """Each speaker's VTLN warp in `d` (spk2warp, or utt2warp agreeing over the speaker)."""
    warps: dict[str, float] = {}
    for utt, spk in d.utt2spk.items():
        if warps.setdefault(spk, d.warp_of(utt)) != d.warp_of(utt):
            raise data_error(d.path / "utt2warp", d.line("utt2warp", utt),
                             f"the utterances of speaker '{spk}' have different warp factors; "
                             f"a copy's speaker has one (spk2warp)", utt=utt)
    return warps


def _read_values(path: Path, label: str, keys, duration: bool) -> dict[str, str]:
    """`<key> <value>` lines of an optional file, for the keys in `keys` (those of the dir);
    with `duration`, each value is checked to be a number of seconds."""
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    for key, (ln, rest) in read_table(path, label, 1).items():
        if len(rest) != 1:
            raise data_error(path, ln, "expected '<id> <value>'", **{label: key})
        if duration:
            try:
                value = float(rest[0])
            except ValueError:
                value = math.nan
            if not (math.isfinite(value) and value >= 0):
                raise data_error(path, ln, f"duration '{rest[0]}' is not a number of seconds",
                                 **{label: key})
        if key in keys:
            out[key] = rest[0]
    return out


def perturb_speed(data_dir, out_dir, factors, copies_only: bool = False) -> DataDir:
    """Write OUT: the data dir's utterances and a copy of them per speed factor (see the module
    docstring); with `copies_only`, the copies alone (as Kaldi's perturb_data_dir_speed.sh
    makes one: for a transfer set, whose originals are already labelled); returns OUT loaded.
    A source dir that is itself perturbed works too: a copy's speed is the product of the two.

    Every file is replaced atomically; perturb-speed's optional files that this source lacks
    are removed from OUT, and features computed in OUT before are marked stale. OUT is marked
    done (`.perturb`) once complete.
    """
    return _perturb(data_dir, out_dir, factors, copies_only, "speed")


def perturb_vtln(data_dir, out_dir, factors, copies_only: bool = False) -> DataDir:
    """As `perturb_speed`, with a copy per VTLN warp factor: the same audio, its speakers'
    features computed at that warp (spk2warp; times the source's own warp)."""
    return _perturb(data_dir, out_dir, factors, copies_only, "vtln")


def _perturb(data_dir, out_dir, factors, copies_only: bool, kind: str) -> DataDir:
    src, out = Path(data_dir), Path(out_dir)
    factors = check_factors(factors, kind)
    speed = kind == "speed"
    prefix = speed_prefix if speed else vtln_prefix
    if out.resolve() == src.resolve():
        raise ValueError(f"{out}: the perturbed dir must not be the source dir")
    # Nothing is run: wav.scp pipes are copied as they are, and run by the features stage.
    d = load_data_dir(src, allow_pipes=True, require_text=False)
    keys = {"utt": set(d.utt2spk), "rec": set(d.wav), "spk": set(d.utt2spk.values())}
    # Without segments a recording is an utterance, and errors call it that.
    label = {"utt": "utt", "spk": "spk", "rec": "rec" if d.segments is not None else "utt"}
    extra = {n: _read_values(src / n, label[kind], keys[kind], duration)
             for n, (kind, duration) in EXTRA_FILES.items()}
    # Kaldi's utt2uniq: the utterance each one was made from, so that a held-out set can leave
    # out every copy of its utterances.
    extra["utt2uniq"] = {u: extra["utt2uniq"].get(u, u) for u in d.utt2spk}
    spk_warp = _speaker_warps(d)

    wav, text, utt2spk, reco2speed, spk2warp = {}, {}, {}, {}, {}
    segments = {} if d.segments is not None else None
    files: dict[str, dict[str, str]] = {n: {} for n in EXTRA_FILES}
    for f in ([] if copies_only else [1.0]) + factors:
        p = "" if f == 1.0 else prefix(f)
        fs, fw = (f, 1.0) if speed else (1.0, f)  # this copy's speed and warp factors
        for rec, spec in d.wav.items():
            wav[p + rec] = spec
            if d.speed_of(rec) * fs != 1.0:
                reco2speed[p + rec] = d.speed_of(rec) * fs
        for spk, warp in spk_warp.items():
            if warp * fw != 1.0:
                spk2warp[p + spk] = warp * fw
        for utt, spk in d.utt2spk.items():
            utt2spk[p + utt] = p + spk
            if utt in d.text:
                text[p + utt] = d.text[utt]
            if segments is not None:
                rec, start, end = d.segments[utt]
                segments[p + utt] = (p + rec, start / fs, end / fs)
        for name, table in extra.items():
            duration = EXTRA_FILES[name][1]
            files[name].update({p + k: repr(round(float(v) / fs, 6)) if duration and fs != 1.0
                                else v for k, v in table.items()})

    clear_done(out, "perturb")
    clear_done(out, "feats")  # features of an earlier OUT no longer match its utterances
    write_data_dir(out, wav, text if (src / "text").is_file() else None, utt2spk, segments,
                   reco2speed)
    if spk2warp:  # the source's utt2warp, if any, is per speaker here
        write_lines(out / "spk2warp", (f"{k} {v!r}" for k, v in sorted(spk2warp.items())))
    for name in ["utt2warp"] + ([] if spk2warp else ["spk2warp"]):
        (out / name).unlink(missing_ok=True)
    for name in EXTRA_FILES:
        if name == "utt2uniq" or (src / name).is_file():
            write_lines(out / name, (f"{k} {v}" for k, v in sorted(files[name].items())))
        elif (out / name).exists():
            (out / name).unlink()
    ours = ("wav.scp", "text", "utt2spk", "spk2utt", "segments", "reco2speed", "spk2warp",
            "utt2warp", *EXTRA_FILES)
    not_carried = sorted(p.name for p in src.iterdir()
                         if p.is_file() and not p.name.startswith(".") and p.name not in ours)
    if not_carried:
        log.info("%s: not carried over to %s: %s", src, out, " ".join(not_carried))
    try:
        made = load_data_dir(out, allow_pipes=True, require_text=False)
    except DataDirError as e:  # a bug here, not in the source: it loaded
        raise RuntimeError(f"perturb-{kind} wrote a bad data dir: {e}") from e
    mark_done(out, "perturb")
    return made
