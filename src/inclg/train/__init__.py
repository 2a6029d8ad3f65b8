"""Training: the paper's alternating D/G loop (`loop`), checkpoints (`checkpoint`), the sample
stream (`data`), torchrun/DDP (`distributed`) and the Optuna search (`tune`)."""
