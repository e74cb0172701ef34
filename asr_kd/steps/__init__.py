"""One module per recipe stage (Kaldi's steps/): each reads its inputs, writes its outputs
atomically and marks its output dir done last, so a rerun skips it and a killed run redoes it."""
