"""Shared pytest setup: single-threaded torch (small tensors run faster and more
repeatably on the 2-core CI machine than with intra-op threads)."""

import torch

torch.set_num_threads(1)
