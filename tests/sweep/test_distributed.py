"""Data-parallel training: the same run in one process and in two gloo processes (torchrun)."""

from __future__ import annotations

import pytest
import torch

from brainalign import results
from brainalign.distributed import World, check_world, launch, shard, train_distributed
from brainalign.errors import ConfigError
from brainalign.io import load_checkpoint, write_yaml


@pytest.mark.parametrize("n, world", [(64, 2), (53, 2), (7, 3), (64, 4)])
def test_shards_are_contiguous_equal_slices_that_cover_the_batch(n, world):
    batch = torch.randperm(100)[:n]
    parts = [shard(batch, r, world) for r in range(world)]
    assert torch.equal(torch.cat(parts), batch)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    if n % world == 0:
        assert {len(p) for p in parts} == {n // world}


def test_batch_sizes_that_do_not_split_are_refused(tiny_config):
    check_world(tiny_config(), n_train=1077, world=2)  # last batch of 53: 27 + 26
    with pytest.raises(ConfigError, match=r"train.batch_size: 63 is not divisible by the 2 training processes"):
        check_world(tiny_config(train={"batch_size": 63}), n_train=1077, world=2)
    with pytest.raises(ConfigError, match=r"last batch of an epoch has 1 of 1025 training images"):
        check_world(tiny_config(), n_train=1025, world=2)


def test_one_process_of_the_parallel_loop_is_bit_identical_to_train(trained_run, tmp_path):
    """Guards the copy of train's loop in distributed.py: any drift from train._fit fails here."""
    config, single = trained_run
    parallel = train_distributed(config.model_copy(update={"out_dir": str(tmp_path)}), evaluate=False, world=World())
    wa, wb = (load_checkpoint(d / results.WEIGHTS)[0] for d in (single, parallel))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert results.read_metrics(single / results.METRICS) == results.read_metrics(parallel / results.METRICS)
    ra, rb = results.read_result(single), results.read_result(parallel)
    assert rb.pop("distributed") == {"world_size": 1, "backend": None, "exact": True, "not_exact_because": []}
    trained = set(rb) - {"git_commit", "robustness"}  # the single run was also evaluated; this one not
    assert {k: ra[k] for k in trained} == {k: rb[k] for k in trained}


def test_two_gloo_processes_give_the_one_process_result(trained_run, two_gloo_processes):
    """torchrun, 2 processes, gloo: batches of 64 split 32 + 32 (the last, 53, split 27 + 26), a regularizer."""
    config, single = trained_run
    parallel = two_gloo_processes(config, single)  # weights equal to the one-process run's
    rows_a, rows_b = (results.read_metrics(d / results.METRICS) for d in (single, parallel))
    assert list(rows_a[0]) == list(rows_b[0]) and len(rows_a) == len(rows_b) == 2
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert rb == pytest.approx(ra, rel=1e-5)
    assert results.read_result(parallel)["distributed"] == {"world_size": 2, "backend": "gloo", "exact": True,
                                                           "not_exact_because": []}
    assert not (parallel / results.CHECKPOINT).exists()


def test_batchnorm_on_cpu_is_refused_before_the_run_folder_is_touched(tiny_config):
    config = tiny_config(model={"name": "resnet18", "width": 4})
    with pytest.raises(ConfigError, match=r"model resnet18 has BatchNorm layers; .*SyncBatchNorm needs GPUs"):
        train_distributed(config, world=World(rank=0, size=2))
    assert not config.run_dir.exists()


def test_launch_refuses_an_indivisible_batch_before_starting_processes(tiny_config, tmp_path):
    config_file = tmp_path / "c.yaml"
    write_yaml(config_file, tiny_config().to_dict())
    with pytest.raises(ConfigError, match=r"train.batch_size: 64 is not divisible by the 3 training processes"):
        launch(config_file, nproc_per_node=3)
