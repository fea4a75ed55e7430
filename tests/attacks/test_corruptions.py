"""imagecorruptions-style corruptions on images smaller than the package's 32 x 32 minimum."""

from __future__ import annotations

import torch

from brainalign.attacks.corruptions import corrupt


def test_resampling_round_trip_is_exact_up_to_8_bits(digits_models):
    x, _ = digits_models.test_batch(8)
    # pixelate at severity 5 box-filters the 4x-replicated 32 x 32 image back to 8 x 8: the identity,
    # so what is left is the pipeline itself (replicate, uint8, corrupt, luma, block-average).
    out = corrupt(x, "pixelate", 5)
    assert (out - x).abs().max() <= 0.5 / 255 + 1e-6
    assert torch.equal(corrupt(x, "fog", 0), x)


def test_colour_images_keep_their_channels(digits_models):
    x, _ = digits_models.test_batch(4, rgb=True)
    out = corrupt(x, "contrast", 3)
    assert out.shape == x.shape
    # contrast pulls every channel towards its own mean: the colour image stays colourful.
    assert (out[:, 0] - out[:, 1]).abs().mean() > 0.01


def test_seed_controls_the_random_corruptions(digits_models):
    x, _ = digits_models.test_batch(4)
    for name in ("gaussian_noise", "impulse_noise", "glass_blur", "frost"):
        a = corrupt(x, name, 3, torch.Generator().manual_seed(0))
        b = corrupt(x, name, 3, torch.Generator().manual_seed(0))
        c = corrupt(x, name, 3, torch.Generator().manual_seed(1))
        assert torch.equal(a, b), name
        assert not torch.equal(a, c), name


def test_severity_orders_the_damage(digits_models):
    x, _ = digits_models.test_batch(16)
    damage = [(corrupt(x, "gaussian_noise", s, torch.Generator().manual_seed(0)) - x).abs().mean() for s in (1, 3, 5)]
    assert damage[0] < damage[1] < damage[2]
