"""Lexicon, phone and word tables, HMM topology, L and G: a Kaldi `data/lang` directory."""

from asr_kd.lang.dictionary import Dictionary, read_dict_dir
from asr_kd.lang.lang_dir import Lang, load_lang, prepare_lang

__all__ = ["Dictionary", "Lang", "load_lang", "prepare_lang", "read_dict_dir"]
