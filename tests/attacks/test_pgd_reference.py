"""Our PGD against torchattacks' PGD on the same trained model (minGPT-style reference comparison)."""

from __future__ import annotations

import torch
import torchattacks

from brainalign.attacks.pgd import pgd_l2, pgd_linf


def test_pgd_linf_matches_torchattacks_without_random_start(gray_model, digits_models):
    x, y = digits_models.test_batch(64)
    eps, alpha, steps = 0.1, 0.02, 10
    ours = pgd_linf(gray_model, x, y, eps, steps=steps, step_size=alpha, random_start=False)
    ref = torchattacks.PGD(gray_model, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)
    # Same steps; we clamp once to the box [max(x - eps, 0), min(x + eps, 1)], torchattacks clips the difference
    # and then the image: the two differ only by float rounding at the ball's edge.
    same = (ours == ref).flatten(1).all(1)
    assert same.float().mean() >= 0.95
    assert (ours - ref).abs().max() <= 2 * alpha + 1e-6
    with torch.no_grad():
        acc_ours = (gray_model(ours).argmax(1) == y).float().mean()
        acc_ref = (gray_model(ref).argmax(1) == y).float().mean()
    assert abs(acc_ours - acc_ref) <= 1 / 64 + 1e-6


def test_pgd_l2_matches_torchattacks_without_random_start(gray_model, digits_models):
    x, y = digits_models.test_batch(64)
    eps, alpha, steps = 1.0, 0.2, 10
    ours = pgd_l2(gray_model, x, y, eps, steps=steps, step_size=alpha, random_start=False)
    ref = torchattacks.PGDL2(gray_model, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)
    # torchattacks normalises with +1e-10 and projects before clipping to the box: near-identical, not bitwise.
    torch.testing.assert_close(ours, ref, atol=1e-3, rtol=0)


def test_pgd_restarts_keep_the_worst_case(gray_model, digits_models):
    x, y = digits_models.test_batch(64)
    one = pgd_linf(gray_model, x, y, 0.08, steps=5, generator=torch.Generator().manual_seed(3))
    many = pgd_linf(gray_model, x, y, 0.08, steps=5, restarts=4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        wrong_one = gray_model(one).argmax(1) != y
        wrong_many = gray_model(many).argmax(1) != y
    # The first restart of ``many`` is ``one`` (same generator): every example it broke stays broken.
    assert (wrong_many | ~wrong_one).all()
    assert wrong_many.sum() >= wrong_one.sum()


def test_later_restarts_attack_only_the_images_still_correct(gray_model, digits_models):
    x, y = digits_models.test_batch(64)
    seen = []

    class Counting(torch.nn.Module):
        def forward(self, xb):
            seen.append(len(xb))
            return gray_model(xb)

    steps = 5
    adv = pgd_linf(Counting(), x, y, 0.1, steps=steps, restarts=3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        wrong = gray_model(adv).argmax(1) != y
    # each restart: `steps` gradient passes and one bookkeeping pass, over the images no earlier restart broke
    per_restart = [seen[i * (steps + 1)] for i in range(len(seen) // (steps + 1))]
    assert per_restart[0] == len(y) and len(seen) == len(per_restart) * (steps + 1)
    assert len(per_restart) >= 2 and per_restart[1] < per_restart[0]  # the first restart breaks some at eps 0.1
    assert all(later <= earlier for earlier, later in zip(per_restart, per_restart[1:], strict=False))
    assert len(y) - per_restart[-1] <= int(wrong.sum())  # those the last restart did not attack are broken
