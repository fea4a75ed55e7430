"""Speed options: bf16 autocast, channels_last and torch.compile give the same step as the plain one."""

from __future__ import annotations

import pytest
import torch

from brainalign.config import parse_config
from brainalign.errors import ConfigError
from brainalign.train import build_trainee, generator, train_step


def _trainee(seed: int = 0, **train):
    config = parse_config({"seed": seed,
        "data": {"name": "digits", "max_train": 64},
        "model": {"name": "resnet18", "width": 8},
        "train": {"batch_size": 16, "optimizer": "adam", "lr": 1e-3, **train},
        "regularizers": [{"name": "neural_prediction", "params": {"stimuli": "classification"},
                          "recording": {"name": "sim_eeg"}}]})
    return build_trainee(config)


def _steps(trainee, n: int = 2) -> list[dict]:
    idx = torch.arange(16)
    data = trainee.data.train
    return [train_step(trainee, data.images[idx], data.labels[idx], generator(0, s), idx) for s in range(n)]


@pytest.mark.parametrize("seed", [0, 1])
def test_bf16_on_cpu_trains_close_to_fp32_and_keeps_float32_weights(seed):
    plain, bf16 = _steps(_trainee(seed)), _steps(_trainee(seed, precision="bf16"))
    trainee = _trainee(seed, precision="bf16")
    _steps(trainee, 1)
    assert all(p.dtype == torch.float32 for p in trainee.model.parameters())
    # first step: the same weights, bf16 rounding only (seen: <= 0.25%); second: after one bf16 update
    # (seen: <= 3.4%); seen under ATEN_CPU_CAPABILITY default, avx2 and avx512 with seeds 0-3
    for (a, b), rel in zip(zip(plain, bf16, strict=True), (0.02, 0.1), strict=True):
        assert b["ce"] == pytest.approx(a["ce"], rel=rel)
        assert b["reg0"] == pytest.approx(a["reg0"], rel=rel)


def test_channels_last_gives_the_same_step():
    plain, nhwc = _steps(_trainee()), _steps(_trainee(channels_last=True))
    trainee = _trainee(channels_last=True)
    assert trainee.model.layers["stem"][0].weight.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(plain, nhwc, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5)


def test_fp16_needs_cuda():
    with pytest.raises(ConfigError, match="train.precision: fp16 needs a CUDA device"):
        parse_config({"train": {"precision": "fp16"}})
    with pytest.raises(ConfigError, match="train.precision"):
        parse_config({"train": {"precision": "fp8"}})


@pytest.mark.slow
def test_compiled_stages_give_the_same_step():
    plain, compiled = _steps(_trainee()), _steps(_trainee(compile=True))
    for a, b in zip(plain, compiled, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3, abs=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cuda(precision):
    steps = _steps(_trainee(device="cuda", precision=precision, channels_last=True))
    assert all(torch.isfinite(torch.tensor(s["loss"])) for s in steps)
