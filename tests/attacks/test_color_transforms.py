"""The torch colour and geometry transforms behind the semantic attacks."""

from __future__ import annotations

import math

import torch

from brainalign.attacks import _color


def test_hsv_round_trip_and_full_turn():
    x = torch.rand(4, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    h, s, v = _color.rgb_to_hsv(x)
    torch.testing.assert_close(_color.hsv_to_rgb(h, s, v), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(_color.adjust_hue(x, torch.full((4,), 2 * math.pi)), x, atol=1e-5, rtol=0)
    # Pure red rotated by a third of a turn is pure green (hue 0 -> 1/3).
    red = torch.zeros(1, 3, 1, 1)
    red[0, 0] = 1
    green = _color.adjust_hue(red, torch.tensor([2 * math.pi / 3]))
    torch.testing.assert_close(green.flatten(), torch.tensor([0.0, 1.0, 0.0]), atol=1e-5, rtol=0)


def test_saturation_zero_is_grey_and_one_is_identity():
    x = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    grey = _color.adjust_saturation(x, torch.zeros(2))
    torch.testing.assert_close(grey, x.amax(1, keepdim=True).expand_as(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(_color.adjust_saturation(x, torch.ones(2)), x, atol=1e-5, rtol=0)


def test_rotation_by_90_degrees_is_rot90_counter_clockwise():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(_color.rotate(x, torch.tensor([90.0, 90.0])), torch.rot90(x, 1, (-2, -1)),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(_color.rotate(x[:, :, :6], torch.zeros(2)), x[:, :, :6], atol=1e-6, rtol=0)


def test_lab_round_trip_and_white_point():
    x = torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(_color.lab_to_rgb(_color.rgb_to_lab(x)), x, atol=1e-4, rtol=0)
    white = _color.rgb_to_lab(torch.ones(1, 3, 1, 1)).flatten()
    torch.testing.assert_close(white, torch.tensor([100.0, 0.0, 0.0]), atol=1e-3, rtol=0)


def test_transforms_are_differentiable_in_their_parameter():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    for fn, p in [(_color.adjust_hue, 0.3), (_color.adjust_saturation, 0.8), (_color.rotate, 5.0),
                  (_color.adjust_brightness, 0.1), (_color.adjust_contrast, 0.9)]:
        theta = torch.full((2,), p, requires_grad=True)
        (grad,) = torch.autograd.grad(fn(x, theta).pow(2).sum(), theta)
        assert torch.isfinite(grad).all() and (grad != 0).all(), fn.__name__
