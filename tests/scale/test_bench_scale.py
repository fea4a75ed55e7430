"""Each pipeline of ``benchmarks.bench_scale`` at about 1% of its size (figures are not budgets here)."""

from __future__ import annotations

import math

import pytest

from benchmarks import bench_scale


def test_slope_recovers_a_power_law():
    xs = [10, 100, 1000, 10_000]
    assert bench_scale.slope(xs, [3 * x**1.5 for x in xs]) == pytest.approx(1.5)


def test_similarity_ridge_and_image_step_pipelines_run_small():
    bench_scale.similarity_targets(n=730, f=32, steps=5)
    out = bench_scale.ridge(n=165, t=17, d=16)
    assert math.isfinite(out["median_r"]) and out["median_r"] > 0.2  # 16 of 16 features carry signal
    assert bench_scale.image_step(size=16, steps=1)["steps"] == 1


def test_nsd_like_pipeline_at_one_percent_runs_in_seconds(tmp_path):
    out = bench_scale.nsd_pipeline(0.01, image_size=16, root=str(tmp_path), block=50)
    assert (out["n_images"], out["n_stimuli"], out["n_voxels"]) == (730, 250, 128)
    assert out["median_r"] > 0.3  # the voxels are a linear function of the features plus noise
    assert out["simulate_s"] + out["load_s"] + out["ridge_s"] < 30  # ~2 s on an idle core


def test_nsd_ridge_estimate_follows_the_measured_slope():
    pts = [{"seconds": 30.0 + 0.05 * t, "peak_mb": 100.0} for t in (250, 500, 1000)]  # fixed + per target
    est = bench_scale.nsd_ridge_estimate([250, 500, 1000], pts, n=1000, target=10_000)
    assert est["seconds"] == pytest.approx(530.0) and est["fixed_seconds"] == pytest.approx(30.0)
    assert est["seconds_per_1000_targets"] == pytest.approx(50.0) and 0 < est["time_slope"] < 1
    assert est["peak_mb"] == pytest.approx(100.0 + 4 * 1000 * 9000 / 2**20) and est["estimate"] is True


def test_image_pipeline_gives_the_same_pixels_as_decoding(eeg2_tree):
    out = bench_scale.pipeline(str(eeg2_tree[0]), 16, workers=0, batch=16)
    assert out["same_pixels"] and out["n"] == 50 and out["decode_ips"] > 0 and out["cached_ips"] > 0


def test_framework_step_at_a_small_imagenet_resnet50():
    from benchmarks.bench_train_step import measure

    r = measure("resnet50_imagenet", 8, 32, 2, repeats=1, steps=1)
    assert r["ours_ms"] > 0 and r["plain_ms"] > 0


def test_plot_writes_a_png_per_curve(tmp_path):
    pts = [{"seconds": 0.1 * k, "peak_mb": 10.0 * k} for k in (1, 2, 4)]
    results = {"similarity": {"n": [1, 2, 4], "points": pts}, "image_size": {"size": [8, 16, 32], "points": pts}}
    paths = bench_scale.plot(results, tmp_path)
    assert sorted(p.name for p in paths) == ["scaling_image_size.png", "scaling_similarity.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


@pytest.mark.slow
def test_isolated_measures_time_and_memory_in_a_fresh_process():
    out = bench_scale.isolated("similarity", n=5000, f=64, steps=2)
    assert out["seconds"] > 0 and out["peak_mb"] >= 0
    with pytest.raises(RuntimeError, match="similarity"):
        bench_scale.isolated("similarity", n=1, f=0)


def test_python_m_benchmarks_runs_every_benchmark_including_this_one():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("bench_main", Path(bench_scale.__file__).with_name("__main__.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the list only: the loop runs under __name__ == "__main__"
    files = sorted(p.stem for p in Path(bench_scale.__file__).parent.glob("bench_*.py"))
    assert "bench_scale" in module.MODULES and sorted(module.MODULES) == files
