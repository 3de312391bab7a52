"""Test-wide settings."""

import torch

# Small models at batch 1 gain nothing from several threads, and on a busy machine OpenMP threads that
# wait on each other make them 10-50x slower. One thread keeps the suite's timing predictable.
torch.set_num_threads(1)
