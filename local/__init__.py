"""Each recipe's corpus: download and Kaldi-style data preparation, one module a corpus, run
as `python -m local.<corpus> download|prepare ...` (the shared command line: local/cli.py)."""
