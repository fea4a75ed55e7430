"""Speed options of a run (``train.precision``, ``train.channels_last``, ``train.compile``), applied in one place.

- ``precision``: the forward passes and losses of a training step run under ``torch.autocast``: ``bf16`` on
  CPU or CUDA, ``fp16`` on CUDA only, with dynamic loss scaling (``torch.amp.GradScaler``) so that small
  gradients do not underflow. Parameters, optimiser state and checkpoints stay float32; the scaler's state
  (scale, growth tracker) is saved in each epoch checkpoint and restored on resume (``brainalign.train``).
  Evaluation and attacks run in float32. fp16 off CUDA is refused by the config although torch (2.3 and later)
  has CPU fp16 autocast and ``GradScaler("cpu")``: on a CPU without native fp16 arithmetic a step runs far
  slower than in fp32 (resnet18 width 16, batch 32, 32 px, one thread, AVX-512 without AVX512-FP16: fp32
  145 ms, bf16 219 ms, fp16 2.1 s), and bf16 needs no loss scaling.
- ``channels_last``: the model's weights and every training batch in NHWC memory format (faster convolutions
  with cuDNN and oneDNN); evaluation (``brainalign.evaluate``) attacks the model in the same format. Measured
  on the demo's small CNN (8x8 digits, one thread, AVX-512; ``python -m benchmarks.bench_channels_last``): an
  attack step (forward and input gradient, 240 images) 0.88x and a training step 0.82x the default format's
  time (max_pool2d's NCHW kernel is a slow part there: 3.3 against 0.27 ms on (240, 32, 8, 8)).
- ``compile``: ``torch.compile`` each named stage of the model in place, so ``model(x)``, ``features`` and
  ``forward_features`` all run compiled code (the first steps pay the compilation).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def prepare_model(model: nn.Module, train) -> nn.Module:
    """Apply ``channels_last`` and ``compile`` to a model (in place); returns it."""
    if train.channels_last:
        model.to(memory_format=torch.channels_last)
    if train.compile:
        for stage in getattr(model, "layers", {}).values():
            stage.compile()
    return model


def batch(x: torch.Tensor, train) -> torch.Tensor:
    """A training batch in the run's memory format."""
    return x.contiguous(memory_format=torch.channels_last) if train.channels_last and x.dim() == 4 else x


def autocast(train):
    """The autocast context of the run's precision (a no-op for fp32)."""
    if train.precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(train.device).type, dtype=_DTYPES[train.precision])


def scaler(train) -> torch.amp.GradScaler | None:
    """A loss scaler for fp16 (None otherwise)."""
    return torch.amp.GradScaler(torch.device(train.device).type) if train.precision == "fp16" else None
