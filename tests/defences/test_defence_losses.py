"""Every defence's loss on a tiny model: the protocol (train mode back, clean logits, determinism), and each
loss against a by-hand reference computed with brainalign's own PGD and the same generator."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from brainalign.attacks.base import threat_model
from brainalign.attacks.pgd import pgd
from brainalign.defences import DefenceInfo
from brainalign.defences.adversarial_training import AdversarialTraining
from brainalign.defences.base import crafting, device_generator
from brainalign.defences.gaussian_noise import GaussianNoiseAugmentation
from brainalign.defences.trades import Trades
from brainalign.models.small_cnn import SmallCNN
from brainalign.registry import DEFENCES

# Small but non-trivial settings for every registered defence; a new defence must add its own here.
EXAMPLES = {
    "adversarial_training": {"eps": 0.1, "steps": 3},
    "trades": {"beta": 6.0, "eps": 0.1, "steps": 3},
    "gaussian_noise_augmentation": {"sigma": 0.2},
}
# Train-mode forward passes per loss call: batch-norm statistics must see only these, never the inner loop.
TRAIN_FORWARDS = {"adversarial_training": 1, "trades": 2, "gaussian_noise_augmentation": 1}


def test_every_registered_defence_has_an_example_and_its_facts():
    assert set(DEFENCES.names()) == set(EXAMPLES)
    for entry in DEFENCES.entries():
        assert isinstance(entry.info, DefenceInfo) and entry.info.reference and entry.description
    assert DEFENCES.info("adversarial_training").uses_attack and DEFENCES.info("trades").uses_attack
    assert not DEFENCES.info("gaussian_noise_augmentation").uses_attack


@pytest.fixture
def batch():
    torch.manual_seed(0)
    model = SmallCNN(10, 1, [0.3], [0.35], width=4).train()
    x = torch.rand(16, 1, 8, 8)
    y = torch.randint(0, 10, (16,))
    return model, x, y


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_protocol(name, batch):
    model, x, y = batch
    defence = DEFENCES.get(name)(**EXAMPLES[name])
    defence.on_epoch_start(0)
    model.head.weight.requires_grad_(False)  # a frozen parameter must stay frozen
    x_before = x.clone()
    loss, logits = defence.loss(model, x, y, gen())
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == [p is not model.head.weight for p in model.parameters()]
    assert torch.equal(x, x_before)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.requires_grad
    model.eval()
    with torch.no_grad():
        assert torch.allclose(logits, model(x), atol=1e-6)  # the clean logits
    model.train()
    loss.backward()
    assert model.layers["conv1"][0].weight.grad.abs().sum() > 0
    again, _ = defence.loss(model, x, y, gen())
    other, _ = defence.loss(model, x, y, gen(1))
    assert torch.equal(loss, again)  # the generator is the only source of randomness
    assert not torch.equal(loss, other)


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Linear(4 * 64, 10)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.conv(x))).flatten(1))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_inner_loop_leaves_batchnorm_statistics_alone(name, batch):
    _, x, y = batch
    model = BNNet().train()
    DEFENCES.get(name)(**EXAMPLES[name]).loss(model, x, y, gen())
    assert int(model.bn.num_batches_tracked) == TRAIN_FORWARDS[name]
    assert model.training


def test_crafting_restores_mode_and_trainable_parameters(batch):
    model, _, _ = batch
    model.head.bias.requires_grad_(False)
    with crafting(model):
        assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.training and not model.head.bias.requires_grad and model.head.weight.requires_grad
    model.eval()
    with pytest.raises(RuntimeError), crafting(model):
        raise RuntimeError
    assert not model.training and model.head.weight.requires_grad


def test_device_generator_is_the_generator_itself_on_the_cpu():
    g = gen()
    assert device_generator(g, torch.device("cpu")) is g


@pytest.mark.parametrize("norm,eps,step_size", [("Linf", 0.1, None), ("L2", 0.5, 0.2)])
def test_adversarial_training_is_ce_on_brainalign_pgd(batch, norm, eps, step_size):
    model, x, y = batch
    defence = AdversarialTraining(eps=eps, norm=norm, steps=3, step_size=step_size)
    loss, _ = defence.loss(model, x, y, gen())
    model.eval()
    alpha = 2.5 * eps / 3 if step_size is None else step_size  # Madry et al.'s constant step by default
    x_adv = pgd(model, x, y, threat_model(norm, eps), steps=3, step_size=alpha, generator=gen())
    model.train()
    assert torch.equal(loss, F.cross_entropy(model(x_adv), y))
    assert loss > F.cross_entropy(model(x), y)  # the inner max found a worse point than the clean batch


def test_adversarial_training_warmup(batch):
    model, x, y = batch
    defence = AdversarialTraining(eps=0.1, steps=2, warmup_epochs=4)
    with pytest.raises(RuntimeError, match="on_epoch_start"):
        defence.loss(model, x, y, gen())  # the schedule is unknown until the loop says which epoch it is
    epsilons = []
    for epoch in range(6):
        defence.on_epoch_start(epoch)
        epsilons.append(defence.current_eps)
    assert epsilons == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1, 0.1])
    defence.on_epoch_start(0)
    loss, _ = defence.loss(model, x, y, gen())
    assert torch.equal(loss, F.cross_entropy(model(x), y))  # epoch 0 of the warm-up is plain training
    defence.on_epoch_start(2)
    assert defence.current_step_size() == pytest.approx(2.5 * 0.05 / 2)  # step size scales with eps
    loss, _ = defence.loss(model, x, y, gen())
    model.eval()
    x_adv = pgd(model, x, y, threat_model("Linf", 0.05), steps=2, step_size=2.5 * 0.05 / 2, generator=gen())
    model.train()
    assert torch.allclose(loss, F.cross_entropy(model(x_adv), y))


def reference_trades(model, x, y, beta, eps, steps, step_size, generator):
    """Zhang et al.'s trades_loss (yaodongyu/TRADES), Linf, with our random start in place of 0.001 N(0, 1)."""
    ball = threat_model("Linf", eps)
    model.eval()
    x_adv = ball.random_init(x, generator)
    for _ in range(steps):
        x_adv.requires_grad_()
        loss_kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(model(x), dim=1), reduction="sum")
        grad = torch.autograd.grad(loss_kl, [x_adv])[0]
        x_adv = torch.min(torch.max(x_adv.detach() + step_size * torch.sign(grad), x - eps), x + eps).clamp(0, 1)
    model.train()
    logits = model(x)
    robust = F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(model(x), dim=1), reduction="sum") / len(x)
    return F.cross_entropy(logits, y) + beta * robust


def test_trades_matches_the_reference_code(batch):
    model, x, y = batch
    ours, _ = Trades(beta=6.0, eps=0.1, steps=4, step_size=0.03).loss(model, x, y, gen())
    ref = reference_trades(model, x, y, 6.0, 0.1, 4, 0.03, gen())
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6)
    assert ours > F.cross_entropy(model(x), y)


def test_trades_gradient_matches_the_reference_code(batch):
    model, x, y = batch
    grads = []
    for fn in (lambda: Trades(beta=1.0, eps=0.1, steps=2, step_size=0.05).loss(model, x, y, gen())[0],
               lambda: reference_trades(model, x, y, 1.0, 0.1, 2, 0.05, gen())):
        model.zero_grad()
        fn().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_trades_at_beta_zero_is_cross_entropy(batch):
    model, x, y = batch
    loss, logits = Trades(beta=0.0, eps=0.1, steps=2).loss(model, x, y, gen())
    assert torch.equal(loss, F.cross_entropy(model(x), y))


def test_noise_augmentation_is_ce_on_a_clipped_noisy_copy(batch):
    model, x, y = batch
    loss, _ = GaussianNoiseAugmentation(sigma=0.3).loss(model, x, y, gen())
    noisy = (x + 0.3 * torch.randn(x.shape, generator=gen())).clamp(0, 1)
    assert torch.equal(loss, F.cross_entropy(model(noisy), y))
    mixed, logits = GaussianNoiseAugmentation(sigma=0.3, mix=True).loss(model, x, y, gen())
    assert torch.allclose(mixed, (F.cross_entropy(model(x), y) + F.cross_entropy(model(noisy), y)) / 2)
    assert logits.shape == (16, 10)


def test_noise_copy_has_the_requested_sigma_inside_the_box():
    from brainalign.defences.gaussian_noise import noisy_copy

    x = torch.full((64, 1, 8, 8), 0.5)
    noisy = noisy_copy(x, 0.1, gen())
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert (noisy - x).std().item() == pytest.approx(0.1, rel=0.05)
    assert torch.equal(noisy_copy(x, 0.0, gen()), x)


def test_training_attack_record():
    at = AdversarialTraining(eps=0.1, steps=4).training_attack
    assert at == {"attack": "pgd_linf", "norm": "Linf", "eps": 0.1, "steps": 4, "step_size": pytest.approx(0.0625),
                  "random_start": True, "warmup_epochs": 0, "loss": "cross-entropy on the label"}
    assert Trades(eps=0.5, norm="L2", steps=5, step_size=0.2).training_attack["attack"] == "pgd_l2"
    assert GaussianNoiseAugmentation(sigma=0.1).training_attack is None
