"""Training: cross-entropy plus weighted regularizer terms, deterministic under a seed, resumable.

One step::

    x, y  <- next classification batch (shuffled per epoch by a generator seeded from (seed, epoch))
    loss  =  CE(model(x), y)                      (or the defence's loss)
          +  sum_r weight_r * R_r(features_r, idx_r)   (each regularizer's stimuli from the second stream)

With ``train.accumulate_steps = k`` a step's batch of batch_size x k examples is cut into k micro-batches,
each micro-batch's loss (as above) is weighted by its share of the step and back-propagated on its own, and
the optimiser steps once (``train_step``).

A checkpoint (safetensors: model, optimiser and regularizer state, and under fp16 the loss scaler's scale and
growth tracker) is written atomically after every epoch, or, with ``train.checkpoint_every_s``, after an epoch only
when that many seconds have passed since training (re)started or the last one (a dcca run's paper-sized heads and
their Adam state make a 60 MB checkpoint, about 80 ms to write in one profile); metrics.csv after every epoch.
Re-running an interrupted run resumes from the last checkpoint and ends with the same metrics as an uninterrupted
run, because every random draw of epoch e comes from a generator seeded by (seed, e).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from brainalign import console, gradient_ratios, results, run_folder
from brainalign.config import RunConfig, check_device
from brainalign.data import DataSplits, load_data
from brainalign.defences import build_defence, defence_record
from brainalign.evaluate import check_eval, evaluate_run
from brainalign.models import BrainModel, build_model
from brainalign.run_folder import load_trained_model  # noqa: F401  (re-exported: brainalign.train.load_trained_model)
from brainalign.seeding import derive_seed, generator
from brainalign.speed import autocast, batch, prepare_model, scaler

__all__ = ["Trainee", "build_trainee", "derive_seed", "finish_run", "generator", "load_trained_model", "resume",
           "train", "train_step"]


SCALER_SCALE, SCALER_GROWTH = "scaler.scale", "scaler.growth_tracker"  # checkpoint keys of the fp16 loss scaler


def learning_rate(config: RunConfig, epoch: int) -> float:
    t = config.train
    if t.schedule == "cosine":
        return t.lr * 0.5 * (1 + math.cos(math.pi * epoch / t.epochs))
    if t.schedule == "step":
        return t.lr * t.step_gamma ** (epoch // t.step_every)
    return t.lr


@dataclass
class Trainee:
    """Everything that learns in a run, built from its config."""

    config: RunConfig
    data: DataSplits
    model: BrainModel
    regularizers: list[tuple[nn.Module, float]]
    defence: object | None
    optimizer: torch.optim.Optimizer
    step_in_epoch: int = 0  # steps taken in the current epoch (gradient ratios are measured on some)
    checkpointed_at: float = 0.0  # time.monotonic() when training (re)started (``resume``) or last checkpointed
    scaler: torch.amp.GradScaler | None = None  # fp16 loss scaling (train.precision)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        for i, (reg, _) in enumerate(self.regularizers):
            tensors.update({f"reg{i}.{k}": v for k, v in reg.state_dict().items()})
        for idx, state in self.optimizer.state_dict()["state"].items():
            for key, value in state.items():
                tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value)
        if self.scaler is not None and self.scaler.is_enabled():
            # fp16 loss scaling: the current scale and the steps since it last changed, so that a resumed run
            # scales (and skips overflowing steps) as the uninterrupted one would
            state = self.scaler.state_dict()
            tensors[SCALER_SCALE] = torch.tensor(state["scale"], dtype=torch.float64)
            tensors[SCALER_GROWTH] = torch.tensor(state["_growth_tracker"], dtype=torch.int64)
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        for i, (reg, _) in enumerate(self.regularizers):
            prefix = f"reg{i}."
            reg.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, idx, name = key.split(".", 2)
                state.setdefault(int(idx), {})[name] = value
        groups = self.optimizer.state_dict()["param_groups"]
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        if self.scaler is not None and self.scaler.is_enabled() and SCALER_SCALE in tensors:
            self.scaler.load_state_dict({**self.scaler.state_dict(), "scale": float(tensors[SCALER_SCALE]),
                                         "_growth_tracker": int(tensors[SCALER_GROWTH])})


def build_trainee(config: RunConfig) -> Trainee:
    """Data, model, regularizers, defence and optimiser for a run; fails before training on bad settings."""
    from brainalign.regularizers import build_regularizers

    data = load_data(config.data)
    torch.manual_seed(derive_seed(config.seed, "init"))
    model = build_model(
        config.model, data.num_classes, data.in_channels, data.image_size, data.mean, data.std
    )
    model.to(config.train.device)
    regs = build_regularizers(config, model, data)
    prepare_model(model, config.train)
    defence = build_defence(config)
    t = config.train
    # Two parameter groups in one optimiser. The model's parameters step in torch's per-tensor loop: fused=True
    # changes trajectories by float rounding, and with it for every parameter the spectral training test's term
    # fell by less than a fifth in 4 of 18 runs (seeds 0-5 x three CPU kernels) against 0 of 18 with the loop;
    # the tuning selected its settings on the loop's trajectories. The regularizers' own parameters (dcca's
    # heads, neural_prediction's readouts, ...) step fused (one kernel over the group), which is where the loop
    # cost most. Measured on a dcca_v1 demo run (255 steps, one thread, shared 2-core machine): the optimiser step
    # 24-27 ms with one loop against 7-9 ms with the heads fused, training 14-17 s against 10-12 s; on a
    # neural_prediction_eeg run (a small readout) 1.5 against 1.2 ms a step, training unchanged (4.3-4.5 s).
    # Regularizers without parameters (spectral, cka) keep one group: their trajectories are unchanged. Over
    # seeds 0-5 x three CPU kernels the training test's check failed in 13 of 108 runs of the six regularizers
    # that own parameters against 15 of 108 with the loop (seed 0, the test's, passes under both everywhere).
    groups = [{"params": list(model.parameters())}]
    own = [p for reg, _ in regs for p in reg.parameters()]
    if own:
        groups.append({"params": own, "fused": torch.device(t.device).type in ("cpu", "cuda")})
    if t.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    else:
        optimizer = torch.optim.Adam(groups, lr=t.lr, weight_decay=t.weight_decay)
    return Trainee(config, data, model, regs, defence, optimizer, scaler=scaler(config.train))


def classification_loss(trainee: Trainee, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
    """CE (or the defence's loss), the logits, and the classification-stream regularizer features."""
    cls_layers = sorted(
        {
            name
            for reg, _ in trainee.regularizers
            if getattr(reg, "stream", "regularization") == "classification"
            for name in reg.layers
        }
    )
    if trainee.defence is not None:
        loss, logits = trainee.defence.loss(trainee.model, x, y, gen)
        feats = trainee.model.features(x, cls_layers) if cls_layers else {}
    else:
        logits, feats = trainee.model.forward_features(x, cls_layers)
        loss = F.cross_entropy(logits, y)
    return loss, logits, feats


def _micro_batch(trainee: Trainee, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator,
                 index: torch.Tensor | None):
    """One micro-batch's total loss, its classification loss, the weighted regularizer terms, logs and logits."""
    model, device, options = trainee.model, trainee.config.train.device, trainee.config.train
    ce, logits, cls_feats = classification_loss(trainee, batch(x, options), y, gen)
    # The first regularizer may reweight the classification loss (learned uncertainty weighting).
    loss = trainee.regularizers[0][0].transform_ce(ce) if trainee.regularizers else ce
    classification = loss
    logs = {"ce": ce.item()}
    weighted = []
    for i, (reg, weight) in enumerate(trainee.regularizers):
        if getattr(reg, "stream", "regularization") == "classification":
            term = reg(cls_feats, index)
        else:
            rows = reg.sample(len(reg.reg_set), gen)  # not ``index``: that is the classification batch's
            feats = reg.stimulus_features(model, batch(reg.reg_set.images[rows].to(device), options))
            term = reg(feats, rows)
        weighted.append(weight * term)
        loss = loss + weighted[-1]
        logs[f"reg{i}"] = term.item()
    return loss, classification, weighted, logs, logits


def train_step(trainee: Trainee, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator,
               index: torch.Tensor | None = None) -> dict[str, float]:
    """One optimiser step over the batch ``(x, y)``; ``index``: its rows in ``data.train`` (single-stream targets
    are looked up by it).

    With ``train.accumulate_steps = k`` the batch is cut into k micro-batches (``tensor_split``: equal up to one
    example), each run forward and backward on its own, its total loss (classification, regularizer terms, a
    defence's loss) weighted by its share of the batch, n_j / n (1/k for equal micro-batches), so that the
    gradients add up to the batch's before the one optimiser step. For losses that are means over the examples
    (cross-entropy, a neural-prediction term on the classification stream) the step equals one step on the
    whole batch. Terms of a batch's pairs or statistics (similarity, CKA, spectral) are the mean of the
    micro-batches' terms instead, and a regularizer with its own stimuli draws a regularization batch per
    micro-batch. Logged values are the step's (share-weighted means; ``correct`` a sum).
    """
    k = trainee.config.train.accumulate_steps
    chunks = [c for c in zip(x.tensor_split(k), y.tensor_split(k),
                             index.tensor_split(k) if index is not None else [None] * k, strict=True) if len(c[1])]
    params = list(trainee.model.parameters())
    measure = bool(trainee.regularizers) and gradient_ratios.measured(trainee.step_in_epoch)
    trainee.step_in_epoch += 1
    trainee.optimizer.zero_grad(set_to_none=True)
    logs: dict[str, float] = {}
    grads: list[torch.Tensor] | None = None
    total = correct = 0.0
    for xb, yb, ib in chunks:
        share = len(yb) / len(y)
        with autocast(trainee.config.train):
            loss, classification, weighted, micro_logs, logits = _micro_batch(trainee, xb, yb, gen, ib)
            if len(chunks) > 1:
                loss, classification = loss * share, classification * share
                weighted = [term * share for term in weighted]
            if measure:
                # autograd.grad leaves .grad alone, so the step below (and the trajectory) is unchanged.
                micro = gradient_ratios.gradients([classification, *weighted], params)
                grads = micro if grads is None else [a + b for a, b in zip(grads, micro, strict=True)]
        for key, value in micro_logs.items():
            logs[key] = logs.get(key, 0.0) + value * share
        (trainee.scaler.scale(loss) if trainee.scaler is not None else loss).backward()
        total += loss.item()  # already weighted by its share
        correct += float((logits.argmax(1) == yb).sum())
    if grads is not None:
        logs.update(gradient_ratios.step_logs(gradient_ratios.ratios_of(grads[0], grads[1:], len(y))))
    if trainee.scaler is not None:
        trainee.scaler.step(trainee.optimizer)
        trainee.scaler.update()
    else:
        trainee.optimizer.step()
    logs["loss"] = total
    logs["correct"] = correct
    return logs


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = sum(
        int((model(x[i : i + batch_size].to(device)).argmax(1).cpu() == y[i : i + batch_size]).sum())
        for i in range(0, len(y), batch_size)
    )
    model.train(was_training)
    return correct / max(len(y), 1)


def train(config: RunConfig, *, progress: bool = True, evaluate: bool = True) -> Path:
    """Train (or resume, or skip if finished) the run of ``config``; then evaluate it. Returns the run folder.

    Everything is validated before the run folder is touched; the folder's lock is held from the claim to
    the last write of the evaluation (``brainalign.run_folder``).
    """
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    check_device(config.train.device)
    trainee = build_trainee(config)
    if evaluate:
        check_eval(config, trainee.data)
    run_folder.check_claim(config)
    with run_folder.locked(config.run_dir) as run_dir:
        run_folder.claim(config)
        if not run_folder.is_trained(run_dir):
            _fit(trainee, run_dir, progress)
        if evaluate:
            evaluate_run(run_dir, progress=progress)
    return run_dir


def resume(trainee: Trainee, run_dir: Path) -> tuple[int, list[dict[str, float]]]:
    """Load the run's checkpoint if there is one: (first epoch to run, metrics rows so far)."""
    trainee.checkpointed_at = time.monotonic()  # train.checkpoint_every_s counts from here
    saved = run_folder.read_checkpoint(run_dir)
    if saved is None:
        return 0, []
    tensors, epoch, rows = saved
    trainee.load_state_tensors(tensors)
    # The checkpoint, not metrics.csv, is the source of truth for the rows.
    return epoch + 1, rows


def start_epoch(trainee: Trainee, epoch: int) -> tuple[torch.Generator, float, torch.Tensor]:
    """Set the epoch's learning rate and hooks; return its generator, learning rate and batch order."""
    config = trainee.config
    gen = generator(config.seed, "epoch", epoch)
    lr = learning_rate(config, epoch)
    for group in trainee.optimizer.param_groups:
        group["lr"] = lr
    trainee.model.train()
    trainee.step_in_epoch = 0  # on every rank (only the main one ends epochs in distributed training)
    for reg, _ in trainee.regularizers:
        reg.on_epoch_start(trainee.model, trainee.data.train.images, epoch)
    if trainee.defence is not None:
        trainee.defence.on_epoch_start(epoch)
    return gen, lr, torch.randperm(len(trainee.data.train.labels), generator=gen)


def end_epoch(trainee: Trainee, run_dir: Path, rows: list[dict[str, float]], epoch: int, lr: float,
              sums: dict[str, float], steps: int) -> dict[str, float]:
    """Append the epoch's metrics row, then write the checkpoint (carrying the rows; when due, see the module
    docstring) and metrics.csv."""
    data = trainee.data
    row = {"epoch": float(epoch), "lr": lr}
    row.update({k: v / steps for k, v in sums.items()
                if k != "correct" and not k.startswith(gradient_ratios.PREFIX)})
    row.update(gradient_ratios.epoch_means(sums))
    row["train_accuracy"] = sums["correct"] / len(data.train.labels)
    row["val_accuracy"] = accuracy(trainee.model, data.val.images, data.val.labels)
    rows.append(row)
    due = time.monotonic() - trainee.checkpointed_at >= trainee.config.train.checkpoint_every_s
    run_folder.write_checkpoint(run_dir, trainee.state_tensors() if due else None, epoch, rows)
    if due:
        trainee.checkpointed_at = time.monotonic()
    return row


def _fit(trainee: Trainee, run_dir: Path, progress: bool) -> None:
    config, data = trainee.config, trainee.data
    start, rows = resume(trainee, run_dir)
    device = config.train.device
    x_all, y_all = data.train.images, data.train.labels
    bs = config.train.batch_size * config.train.accumulate_steps  # one optimiser step's examples
    row: dict[str, float] = rows[-1] if rows else {}
    epochs = console.progress(range(start, config.train.epochs), desc=f"{config.name} seed {config.seed}: training",
                              enabled=progress, initial=start, total=config.train.epochs,
                              postfix=lambda: (f"loss {row['loss']:.3f} val {row['val_accuracy']:.3f}" if row else ""))
    for epoch in epochs:
        gen, lr, perm = start_epoch(trainee, epoch)
        sums: dict[str, float] = {}
        steps = 0
        for i in range(0, len(perm), bs):
            idx = perm[i : i + bs]
            logs = train_step(trainee, x_all[idx].to(device), y_all[idx].to(device), gen, idx)
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
        row = end_epoch(trainee, run_dir, rows, epoch, lr, sums, steps)
    finish_run(trainee, run_dir, rows)


def finish_run(trainee: Trainee, run_dir: Path, rows: list[dict[str, float]], extra: dict | None = None) -> None:
    """Write a trained run's weights and result.json (plus ``extra`` fields), then drop its checkpoint."""
    config, data, model = trainee.config, trainee.data, trainee.model
    model.eval()
    result = results.provenance()
    result.update(
        {
            "experiment": config.experiment,
            "name": config.name,
            "seed": config.seed,
            "data": config.data.name,
            "model": config.model.name,
            "regularizers": [
                {"name": r.name, "weight": r.weight, "control": r.control, "params": r.params}
                for r in config.regularizers
            ],
            "defences": [defence_record(d, trainee.defence) for d in config.defences],
            "regularization_targets": [getattr(reg, "target_info", {}) for reg, _ in trainee.regularizers],
            "simulated_data": any(
                getattr(getattr(reg, "reg_set", None), "simulated", False) for reg, _ in trainee.regularizers
            ),
            "epochs": config.train.epochs,
            "final_train_loss": rows[-1]["loss"],
            "val_accuracy": rows[-1]["val_accuracy"],
            "clean_accuracy": accuracy(model, data.test.images, data.test.labels),
            "n_test": len(data.test),
            "robustness": {},
        }
    )
    from brainalign.analysis.summary import not_above_chance

    result["did_not_learn"] = not_above_chance(result["clean_accuracy"], result["n_test"], data.num_classes)
    result.update(gradient_ratios.summarize(rows, [r.name for r in config.regularizers]))
    result.update(extra or {})
    run_folder.finish(run_dir, dict(model.state_dict()), config.model.name, result)
