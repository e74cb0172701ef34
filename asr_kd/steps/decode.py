"""Stage 9: decode a data dir with one system; write hypotheses, WER and frame accuracy.

Any registered decoder (asr_kd.decode.base) over the same HCLG, acoustic scale and beam:
`reference` (kaldi-decoder's FasterDecoder, one utterance at a time on the CPU) or `torch`
(asr_kd.decode.torch_decoder, each batch of utterances at once, on the chosen device).

Outputs in the decode dir: hyp.txt (Kaldi `text`), wer (Kaldi's %WER line), scores.json.
Where the graph dir has a score map (score_map.txt, from the lang dir; asr_kd.score.wer), both
the references and the hypotheses are mapped with it before scoring, as TIMIT's 48 phones are
folded to 39: hyp.txt stays as decoded, and score_ref.txt / score_hyp.txt hold what was scored.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from asr_kd.acoustic import load_acoustic_model
from asr_kd.decode import (
    DEFAULT_DECODER,
    DecodeConfig,
    decode_marker,
    decoder_names,
    make_decoder,
    resolve_decoder,
)
from asr_kd.features import as_tensors
from asr_kd.score.frame_acc import frame_accuracy
from asr_kd.score.wer import SCORE_MAP_FILE, apply_score_map, compute_wer, read_score_map
from asr_kd.steps.common import load_dir_feats, read_alignments
from asr_kd.utils.fst import read_fst, read_symbols
from asr_kd.utils.io import clear_done, mark_done, write_json, write_lines, write_text
from asr_kd.utils.progress import progress

log = logging.getLogger(__name__)


def run_decode(system: str, model_path, graph_dir, data_dir, out_dir, cfg: DecodeConfig,
               device, ali_dir=None, batch_size: int = 16,
               decoder: str = DEFAULT_DECODER) -> dict:
    out_dir, graph_dir = Path(out_dir), Path(graph_dir)
    decoder = resolve_decoder(decoder, device)
    for name in decoder_names():
        clear_done(out_dir, decode_marker(name, device))
    d, feats = load_dir_feats(data_dir)
    ali = None
    if ali_dir is not None and (Path(ali_dir) / "ali.ark").exists():
        ali = read_alignments(ali_dir, d, feats)
    model = load_acoustic_model(model_path, device)
    search = make_decoder(decoder, read_fst(graph_dir / "HCLG.fst"), cfg, device)
    id2word = {i: w for w, i in read_symbols(graph_dir / "words.txt").items()}
    feats_t = as_tensors(feats)
    utts = d.utts
    hyps, preds, failed = {}, {}, []
    t_model = t_search = 0.0
    for i in progress(range(0, len(utts), batch_size), f"decode {system}", unit="batches"):
        batch = utts[i:i + batch_size]
        t0 = time.time()
        scored = model.scores([feats_t[u] for u in batch])
        t_model += time.time() - t0
        t0 = time.time()
        found = search.decode_batch([ll for ll, _ in scored])
        t_search += time.time() - t0
        for u, (_, cls), hyp in zip(batch, scored, found):
            preds[u] = cls.argmax(-1).cpu().numpy()
            if hyp is None or not hyp.reached_final:
                failed.append(u)
            hyps[u] = [id2word[w] for w in hyp.words] if hyp is not None else []
    if failed:
        log.warning("%d utterances reached no final state: %s", len(failed), " ".join(failed[:10]))
    refs, scored, score_map = d.text, hyps, graph_dir / SCORE_MAP_FILE
    if score_map.is_file():
        mapping = read_score_map(score_map)
        refs, scored = apply_score_map(refs, mapping), apply_score_map(hyps, mapping)
        write_lines(out_dir / "score_ref.txt", (" ".join([u] + refs[u]) for u in utts))
        write_lines(out_dir / "score_hyp.txt", (" ".join([u] + scored[u]) for u in utts))
    else:
        score_map = None
        for name in ("score_ref.txt", "score_hyp.txt"):
            (out_dir / name).unlink(missing_ok=True)
    wer = compute_wer(refs, scored)
    frames = sum(len(p) for p in preds.values())
    acc = None if ali is None else frame_accuracy(preds, ali)[0]
    write_lines(out_dir / "hyp.txt", (" ".join([u] + hyps[u]) for u in utts))
    write_text(out_dir / "wer", wer.kaldi_line() + "\n" + wer.ser_line() + "\n")
    audio_s = frames * 0.01
    scores = {"system": system, "model": str(model_path), "data": str(data_dir),
              "graph": str(graph_dir),
              "wer": float(f"{wer.wer:.2f}"),  # as Kaldi's %WER line prints it
              "frame_acc": None if acc is None else round(acc, 4),
              "params": model.num_params,
              "flops_per_frame": model.flops_per_frame(next(iter(feats.values())).shape[1]),
              "hyp": str(out_dir / "hyp.txt"),
              "wer_detail": wer.to_dict(), "kaldi_line": wer.kaldi_line(),
              "score_map": None if score_map is None else str(score_map),
              "frames": frames, "model_seconds": round(t_model, 3),
              "search_seconds": round(t_search, 3),
              "search_rtfx": round(audio_s / t_search, 1) if t_search > 0 else None,
              "no_final_state": failed, "decoder": decoder, "config": cfg.__dict__}
    write_json(out_dir / "scores.json", scores)
    mark_done(out_dir, decode_marker(decoder))
    acc_s = "n/a" if acc is None else f"{acc:.2f}%"
    print(f"{system}: {wer.kaldi_line()} frame_acc {acc_s}")
    return scores
