"""Data-parallel training of one run over several processes (torchrun), equal to one process up to rounding.

Launch with ``brainalign train CONFIG --distributed --nproc-per-node N`` (which runs
``python -m torch.distributed.run --standalone --nproc-per-node N -m brainalign.distributed CONFIG``) or,
across nodes, with torchrun directly (see docs/scaling.md). Backend: gloo on CPU, nccl on GPU.

Why the result equals one process's. Every rank draws the epoch's permutation from the same generator
(seed, epoch), cuts the same batches, and takes an equal contiguous slice of each (``shard``). With
``n_r`` of the batch's ``n`` examples on rank r, the full-batch gradient of a mean-reduced loss is

    grad = sum_r (n_r / n) * grad_r        (grad_r: gradient of rank r's mean loss)

which is what :func:`average_gradients` computes with one all-reduce before every optimiser step (for
equal shards, the plain average that DDP computes). Regularizer stimuli are drawn from the same generator
on every rank, so every rank computes the same regularizer term, and its weighted sum is that term's
gradient again (the weights add up to 1). The optimiser then makes the same step on every rank.

Why not ``DistributedDataParallel`` itself: a step runs the model twice before one backward (the
classification batch and the regularization stimuli), regularizers own parameters of their own (learned layer
weights, uncertainty weights) that a DDP-wrapped model does not see, and the last, shorter batch needs the
weights above. Averaging the optimiser's gradients is DDP's arithmetic on exactly the parameters that are
stepped; what it gives up is DDP's overlap of communication with the backward pass (one coalesced
all-reduce per step instead), which matters only for large models on fast GPUs.

Exact equality needs a loss that is a mean over the batch's examples. Not exact (reported in result.json
under ``distributed.exact``): defences (their random draws depend on the shard's size), classification-stream
regularizers (batch statistics of a shard are not those of the batch) and BatchNorm on CPU (refused: torch's
SyncBatchNorm needs GPUs; on GPUs BatchNorm layers are converted to SyncBatchNorm).

Only rank 0 writes: the run folder, checkpoints (resumable as in ``train``), ``model.safetensors``,
``result.json`` and the evaluation, which rank 0 runs alone after training.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from brainalign import run_folder
from brainalign.config import RunConfig, load_config
from brainalign.errors import BrainAlignError, ConfigError
from brainalign.train import (
    Trainee,
    build_trainee,
    end_epoch,
    finish_run,
    resume,
    start_epoch,
    train_step,
)


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device: str = "cpu") -> World:
    """Join the process group that torchrun describes in RANK/WORLD_SIZE/LOCAL_RANK (gloo on CPU, nccl on GPU).

    Without those variables this is one process: ``World()``, and no process group is created.
    """
    import torch.distributed as dist

    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1:
        return World()
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed; install a torch with distributed support")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    cuda = device.startswith("cuda")
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local_rank, backend=backend)


def shard(batch_indices: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """Rank ``rank``'s contiguous slice of a batch; sizes differ by at most one (equal when world divides it)."""
    n = len(batch_indices)
    return batch_indices[(n * rank) // world : (n * (rank + 1)) // world]


def check_world(config: RunConfig, n_train: int, world: int) -> None:
    """Refuse batch sizes that cannot be split over ``world`` processes."""
    bs = config.train.batch_size
    if bs % world:
        raise ConfigError(f"train.batch_size: {bs} is not divisible by the {world} training processes; "
                          f"choose a multiple of {world}")
    k = config.train.accumulate_steps  # every rank cuts its shard of a step into k micro-batches
    last = n_train % (bs * k)
    if 0 < last < world * k:
        raise ConfigError(f"train.batch_size: the last batch of an epoch has {last} of {n_train} training images, "
                          f"fewer than the {world} processes" + (f" x {k} micro-batches" if k > 1 else "") +
                          "; choose another batch size")


def average_gradients(parameters: list[nn.Parameter], weight: float, world: World) -> None:
    """Replace every gradient by sum over ranks of ``weight_r * grad_r``, in one all-reduce."""
    import torch.distributed as dist

    if world.size == 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    # The same parameters must have gradients on every rank, or the all-reduce below would mismatch.
    count = torch.tensor([len(grads)], dtype=torch.long, device=grads[0].device if grads else "cpu")
    total = count.clone()
    dist.all_reduce(total)
    if int(total) != len(grads) * world.size:
        raise RuntimeError("ranks disagree on which parameters have gradients; the runs have diverged")
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads]) * weight
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def _broadcast_state(trainee: Trainee, world: World) -> None:
    """Start every rank from rank 0's weights (they agree already; this makes it a guarantee)."""
    import torch.distributed as dist

    modules = [trainee.model] + [reg for reg, _ in trainee.regularizers]
    for module in modules:
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _inexact_reasons(trainee: Trainee) -> list[str]:
    reasons = []
    if trainee.defence is not None:
        reasons.append("a defence draws random numbers per shard")
    if any(getattr(reg, "stream", "regularization") == "classification" for reg, _ in trainee.regularizers):
        reasons.append("a classification-stream regularizer sees a shard's features, not the batch's")
    return reasons


def _agree(world: World, error: BaseException | None) -> None:
    """Raise on every rank if rank 0 failed (so that no rank waits for a collective that never comes)."""
    import torch.distributed as dist

    if world.size == 1:
        if error is not None:
            raise error
        return
    message = [None if error is None else f"{type(error).__name__}: {error}"]
    dist.broadcast_object_list(message, src=0)
    if error is not None:
        raise error
    if message[0] is not None:
        raise BrainAlignError(f"rank 0 failed: {message[0]}")


def train_distributed(config: RunConfig, *, progress: bool = False, evaluate: bool = True,
                      world: World | None = None) -> Path:
    """``brainalign.train.train`` with every batch split over the processes of ``world`` (default: from env).

    Trains (or resumes, or skips if finished), then rank 0 evaluates. Returns the run folder on every rank.
    """
    world = world or init_from_env(config.train.device)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    trainee = build_trainee(config)  # the same on every rank: same seed, same data
    check_world(config, len(trainee.data.train.labels), world.size)
    if world.size > 1 and _has_batchnorm(trainee.model):
        if not config.train.device.startswith("cuda"):
            raise ConfigError(f"model {config.model.name} has BatchNorm layers; data-parallel training on CPU would "
                              f"normalise each process's shard alone (torch's SyncBatchNorm needs GPUs); "
                              f"train it in one process or on GPUs")
        trainee.model = nn.SyncBatchNorm.convert_sync_batchnorm(trainee.model)
    error = None
    run_dir = config.run_dir
    with contextlib.ExitStack() as held:
        if world.is_main:
            try:
                run_folder.check_claim(config)
                held.enter_context(run_folder.locked(run_dir))  # rank 0 writes; it holds the lock throughout
                run_folder.claim(config)
            except BrainAlignError as exc:
                error = exc
        _agree(world, error)
        if not run_folder.is_trained(run_dir):
            if world.size > 1:
                _broadcast_state(trainee, world)
            _fit_parallel(trainee, run_dir, world, progress)
        if world.size > 1:
            import torch.distributed as dist

            dist.barrier()  # weights written before anyone returns; rank 0 then evaluates alone
        if evaluate and world.is_main:
            from brainalign.evaluate import evaluate_run

            evaluate_run(run_dir, progress=progress)
    return run_dir


def _fit_parallel(trainee: Trainee, run_dir: Path, world: World, progress: bool) -> None:
    """``brainalign.train._fit`` with sharded batches, averaged gradients and rank-0 writes."""
    import torch.distributed as dist

    config, data = trainee.config, trainee.data
    start, rows = resume(trainee, run_dir)
    device = config.train.device
    x_all, y_all = data.train.images, data.train.labels
    bs = config.train.batch_size * config.train.accumulate_steps  # one optimiser step's examples
    params = [p for group in trainee.optimizer.param_groups for p in group["params"]]
    step_weight = [1.0]
    hook = trainee.optimizer.register_step_pre_hook(
        lambda *_: average_gradients(params, step_weight[0], world))
    try:
        for epoch in range(start, config.train.epochs):
            gen, lr, perm = start_epoch(trainee, epoch)
            sums: dict[str, float] = {}
            steps = 0
            for i in range(0, len(perm), bs):
                batch = perm[i : i + bs]
                idx = shard(batch, world.rank, world.size)
                step_weight[0] = len(idx) / len(batch)
                logs = train_step(trainee, x_all[idx].to(device), y_all[idx].to(device), gen, idx)
                for k, v in logs.items():
                    # Per-step means of this shard, weighted so that the sum over ranks is the batch's mean.
                    sums[k] = sums.get(k, 0.0) + (v if k == "correct" else v * step_weight[0])
                steps += 1
            if world.size > 1:
                keys = list(sums)  # the same order on every rank: train_step logs in a fixed order
                total = torch.tensor([sums[k] for k in keys], dtype=torch.float64)
                dist.all_reduce(total)
                sums = dict(zip(keys, total.tolist(), strict=True))
            if not world.is_main:
                continue
            row = end_epoch(trainee, run_dir, rows, epoch, lr, sums, steps)
            if progress:
                print(f"epoch {epoch}: loss {row['loss']:.3f} val {row['val_accuracy']:.3f}", file=sys.stderr)
    finally:
        hook.remove()
    if world.is_main:
        _finish(trainee, run_dir, rows, world)


def _finish(trainee: Trainee, run_dir: Path, rows: list[dict[str, float]], world: World) -> None:
    """Weights and result.json, as ``brainalign.train`` writes them, plus how the run was split."""
    reasons = _inexact_reasons(trainee)
    # SyncBatchNorm keeps BatchNorm's state-dict keys, so the weights load into the plain model.
    finish_run(trainee, run_dir, rows, {"distributed": {"world_size": world.size, "backend": world.backend,
                                                        "exact": not reasons, "not_exact_because": reasons}})


# --------------------------------------------------------------------------------------------------------
# Launching


def launch(config_path: str | Path, overrides: list[str] | None = None, *, nproc_per_node: int = 2,
           evaluate: bool = True, torchrun_args: list[str] | None = None) -> Path:
    """Run ``train_distributed`` in ``nproc_per_node`` processes on this machine through torchrun.

    The config is validated here first, so that a bad value is one clear error rather than N tracebacks.
    """
    if nproc_per_node < 1:
        raise ConfigError(f"--nproc-per-node must be >= 1, got {nproc_per_node}")
    config = load_config(config_path, overrides)
    if config.train.batch_size % nproc_per_node:
        raise ConfigError(f"train.batch_size: {config.train.batch_size} is not divisible by the {nproc_per_node} "
                          f"training processes; choose a multiple of {nproc_per_node}")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc_per_node}",
               *(torchrun_args or []), "-m", "brainalign.distributed", str(config_path)]
    for item in overrides or []:
        command += ["--set", item]
    if not evaluate:
        command.append("--no-evaluate")
    env = dict(os.environ)
    if config.train.threads:
        env.setdefault("OMP_NUM_THREADS", str(config.train.threads))
    completed = subprocess.run(command, env=env)
    if completed.returncode != 0:
        raise BrainAlignError(f"distributed training failed (torchrun exit code {completed.returncode}); "
                              f"the processes' messages are above")
    return config.run_dir


def main(argv: list[str] | None = None) -> int:
    """Entry point of each torchrun process: ``python -m brainalign.distributed CONFIG [--set k=v]...``."""
    parser = argparse.ArgumentParser(prog="python -m brainalign.distributed",
                                     description="one process of a data-parallel brainalign run (start with torchrun)")
    parser.add_argument("config")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--no-evaluate", dest="evaluate", action="store_false")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    import torch.distributed as dist

    try:
        config = load_config(args.config, args.overrides)
        run_dir = train_distributed(config, progress=args.progress, evaluate=args.evaluate)
        if int(os.environ.get("RANK", 0)) == 0:
            print(f"run folder: {run_dir}")
        return 0
    except BrainAlignError as exc:
        print(f"error (rank {os.environ.get('RANK', 0)}): {exc}", file=sys.stderr)
        return 2
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
