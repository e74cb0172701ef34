"""Frame-level training of acoustic models on HMM-state targets."""
