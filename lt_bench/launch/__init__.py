"""Where runs execute: in this process (`--launcher local`, also under torchrun) or on SLURM through
submitit (`--launcher slurm`, `--cluster PROFILE`); `lt-bench status` follows submitted runs."""
