"""Training: cross-entropy plus weighted regularizer terms, deterministic under a seed, resumable.

One step::

    x, y  <- next classification batch (shuffled per epoch by a generator seeded from (seed, epoch))
    loss  =  CE(model(x), y)                      (or the defence's loss)
          +  sum_r weight_r * R_r(features_r, idx_r)   (each regularizer's stimuli from the second stream)

A checkpoint (safetensors: model, optimiser and regularizer state) is written atomically after every
epoch; re-running an interrupted run resumes from it and ends with the same metrics as an
uninterrupted run, because every random draw of epoch e comes from a generator seeded by (seed, e).
"""

from __future__ import annotations

import json
import math
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from brainalign import results
from brainalign.config import RunConfig, parse_config, read_yaml
from brainalign.data import DataSplits, load_data
from brainalign.defences import build_defence, defence_record
from brainalign.errors import ConfigError
from brainalign.io import load_checkpoint, save_checkpoint, write_yaml
from brainalign.models import BrainModel, build_model
from brainalign.speed import autocast, batch, prepare_model, scaler


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from any parts (crc32 of their text), the same on every machine."""
    return zlib.crc32("/".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


def generator(*parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(*parts))


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
    scaler: torch.amp.GradScaler | None = None  # fp16 loss scaling (train.precision)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        for i, (reg, _) in enumerate(self.regularizers):
            tensors.update({f"reg{i}.{k}": v for k, v in reg.state_dict().items()})
        for idx, state in self.optimizer.state_dict()["state"].items():
            for key, value in state.items():
                tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value)
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
    params = list(model.parameters()) + [p for reg, _ in regs for p in reg.parameters()]
    t = config.train
    if t.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    else:
        optimizer = torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    return Trainee(config, data, model, regs, defence, optimizer, scaler(config.train))


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


def train_step(trainee: Trainee, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator,
               index: torch.Tensor | None = None) -> dict[str, float]:
    """One optimiser step; ``index``: the batch's rows in ``data.train`` (single-stream targets are looked up
    by it)."""
    model, device, options = trainee.model, trainee.config.train.device, trainee.config.train
    with autocast(options):
        ce, logits, cls_feats = classification_loss(trainee, batch(x, options), y, gen)
        loss = ce
        logs = {"ce": ce.item()}
        for i, (reg, weight) in enumerate(trainee.regularizers):
            loss = reg.transform_ce(loss) if i == 0 else loss
            if getattr(reg, "stream", "regularization") == "classification":
                term = reg(cls_feats, index)
            else:
                rows = reg.sample(len(reg.reg_set), gen)  # not ``index``: that is the classification batch's
                feats = model.features(batch(reg.reg_set.images[rows].to(device), options), reg.layers)
                term = reg(feats, rows)
            loss = loss + weight * term
            logs[f"reg{i}"] = term.item()
    trainee.optimizer.zero_grad(set_to_none=True)
    if trainee.scaler is not None:
        trainee.scaler.scale(loss).backward()
        trainee.scaler.step(trainee.optimizer)
        trainee.scaler.update()
    else:
        loss.backward()
        trainee.optimizer.step()
    logs["loss"] = loss.item()
    logs["correct"] = float((logits.argmax(1) == y).sum())
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


def _claim_run_dir(config: RunConfig) -> Path:
    """Create the run folder, or check that an existing one was written by this same configuration.

    Only the ``eval`` section may differ (it does not change what was trained): it is updated, and the
    evaluation then adds the new attacks without re-running finished ones.
    """
    run_dir = config.run_dir
    saved = run_dir / results.CONFIG
    current = config.to_dict()
    if saved.exists():
        previous = parse_config(read_yaml(saved)).to_dict()
        diff = sorted(k for k in current if k != "eval" and previous.get(k) != current[k])
        if diff:
            raise ConfigError(
                f"{run_dir} holds a run of another configuration (differs in: {', '.join(diff)}); "
                f"choose another name, experiment or out_dir"
            )
        if previous["eval"] != current["eval"]:
            write_yaml(saved, current)
    else:
        write_yaml(saved, current)
    return run_dir


def train(config: RunConfig, *, progress: bool = True, evaluate: bool = True) -> Path:
    """Train (or resume, or skip if finished) the run of ``config``; then evaluate it. Returns the run folder."""
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    trainee = build_trainee(config)  # validates everything before the run folder is touched
    run_dir = _claim_run_dir(config)
    if not (run_dir / results.WEIGHTS).exists():
        _fit(trainee, run_dir, progress)
    if evaluate:
        from brainalign.evaluate import evaluate_run

        evaluate_run(run_dir, progress=progress)
    return run_dir


def resume(trainee: Trainee, run_dir: Path) -> tuple[int, list[dict[str, float]]]:
    """Load the run's checkpoint if there is one: (first epoch to run, metrics rows so far)."""
    if not (run_dir / results.CHECKPOINT).exists():
        return 0, []
    tensors, meta = load_checkpoint(run_dir / results.CHECKPOINT)
    trainee.load_state_tensors(tensors)
    # The checkpoint, not metrics.csv, is the source of truth for the rows.
    return int(meta["epoch"]) + 1, json.loads(meta["metrics"])


def start_epoch(trainee: Trainee, epoch: int) -> tuple[torch.Generator, float, torch.Tensor]:
    """Set the epoch's learning rate and hooks; return its generator, learning rate and batch order."""
    config = trainee.config
    gen = generator(config.seed, "epoch", epoch)
    lr = learning_rate(config, epoch)
    for group in trainee.optimizer.param_groups:
        group["lr"] = lr
    trainee.model.train()
    for reg, _ in trainee.regularizers:
        reg.on_epoch_start(trainee.model, trainee.data.train.images, epoch)
    if trainee.defence is not None:
        trainee.defence.on_epoch_start(epoch)
    return gen, lr, torch.randperm(len(trainee.data.train.labels), generator=gen)


def end_epoch(trainee: Trainee, run_dir: Path, rows: list[dict[str, float]], epoch: int, lr: float,
              sums: dict[str, float], steps: int) -> dict[str, float]:
    """Append the epoch's metrics row, then write the checkpoint (carrying the rows) and metrics.csv."""
    data = trainee.data
    row = {"epoch": float(epoch), "lr": lr}
    row.update({k: v / steps for k, v in sums.items() if k != "correct"})
    row["train_accuracy"] = sums["correct"] / len(data.train.labels)
    row["val_accuracy"] = accuracy(trainee.model, data.val.images, data.val.labels)
    rows.append(row)
    save_checkpoint(run_dir / results.CHECKPOINT, trainee.state_tensors(),
                    {"epoch": str(epoch), "metrics": json.dumps(rows)})
    results.write_metrics(run_dir / results.METRICS, rows)
    return row


def _fit(trainee: Trainee, run_dir: Path, progress: bool) -> None:
    config, data = trainee.config, trainee.data
    start, rows = resume(trainee, run_dir)
    device = config.train.device
    x_all, y_all = data.train.images, data.train.labels
    bs = config.train.batch_size
    bar = tqdm(
        range(start, config.train.epochs),
        desc=f"{config.name} seed {config.seed}",
        disable=None if progress else True,
        file=sys.stderr,
        leave=False,
        initial=start,
        total=config.train.epochs,
    )
    for epoch in bar:
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
        bar.set_postfix(loss=f"{row['loss']:.3f}", val=f"{row['val_accuracy']:.3f}")
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
    result.update(extra or {})
    weights = {k: v for k, v in model.state_dict().items()}
    save_checkpoint(
        run_dir / results.WEIGHTS, weights, {"format": "brainalign-model", "model": config.model.name}
    )
    results.write_result(run_dir, result)
    (run_dir / results.CHECKPOINT).unlink(missing_ok=True)


def load_trained_model(run_dir: str | Path) -> tuple[RunConfig, DataSplits, BrainModel]:
    """The config, data splits and trained model (eval mode, CPU) of a finished run folder."""
    run_dir = Path(run_dir)
    config = parse_config(read_yaml(run_dir / results.CONFIG))
    data = load_data(config.data)
    model = build_model(
        config.model, data.num_classes, data.in_channels, data.image_size, data.mean, data.std
    )
    tensors, _ = load_checkpoint(run_dir / results.WEIGHTS)
    model.load_state_dict(tensors)
    return config, data, model.eval()
