"""Fixed, seeded stimulus models behind the simulated recordings (no training, no data).

- ``GaborBank``: V1-like simple and complex cells in the spirit of VOneNet (Dapello et al. 2020):
  orientation preferences weighted towards the cardinals as in De Valois et al. (1982), spatial
  frequency log-uniform from 0.5 cycles/deg up to 0.8 x Nyquist, envelope widths n_x, n_y (in periods)
  log-normal as in Ringach (2002), random phase and receptive-field centre. Simple cell = ReLU of the
  even filter, complex cell = quadrature energy sqrt(q0^2 + q1^2) / sqrt(2).
- ``RandomDeepFeatures``: a deeper fixed nonlinear stage: quadrature-energy filters at 8 orientations,
  then two random 3x3 convolutions with ReLU, divisive normalisation and pooling, ending in global
  average and max pooling (position invariance). Gives "mid" (coarse 2x2 layout) and "deep" features.

Every response is a function of one image, the seed and the parameters only: normalising constants
come from a fixed set of seeded pink-noise reference images, never from the stimulus set, so
simulating the train and test images in two calls gives one consistent "brain".
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from brainalign.errors import ConfigError

_ORI_WEIGHTS = np.array([66.0, 49.0, 77.0, 54.0])  # De Valois 1982 counts at 0, 45, 90, 135 deg (as VOneNet)


def to_gray(images: np.ndarray, resolution: int) -> np.ndarray:
    """(N, C, H, W) images in [0, 1] -> float32 (N, resolution, resolution) luminance."""
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[1] not in (1, 3, 4):
        raise ConfigError(f"images must be (N, C, H, W) with C in 1, 3, 4; got shape {x.shape}")
    x = x.astype(np.float32, copy=False)
    if x.size and (not np.isfinite(x).all() or x.min() < -1e-3 or x.max() > 1 + 1e-3):
        raise ConfigError("images must be finite and in [0, 1]")
    if x.shape[1] >= 3:
        gray = np.tensordot(x[:, :3], np.array([0.299, 0.587, 0.114], dtype=np.float32), axes=([1], [0]))
    else:
        gray = x[:, 0]
    if gray.shape[1:] == (resolution, resolution):
        return np.ascontiguousarray(gray, dtype=np.float32)
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(gray))[:, None]
    t = F.interpolate(t, size=(resolution, resolution), mode="bilinear", align_corners=False,
                      antialias=gray.shape[1] > resolution)
    return t[:, 0].numpy().astype(np.float32)


@lru_cache(maxsize=8)
def reference_images(resolution: int, n: int = 128, seed: int = 0) -> np.ndarray:
    """Seeded 1/f ("pink") noise images in [0, 1], float32 (n, resolution, resolution), read-only."""
    rng = np.random.default_rng([seed, 99])
    f = np.fft.fftfreq(resolution)
    radius = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    radius[0, 0] = 1.0
    spectrum = (rng.standard_normal((n, resolution, resolution))
                + 1j * rng.standard_normal((n, resolution, resolution))) / radius
    spectrum[:, 0, 0] = 0.0
    img = np.real(np.fft.ifft2(spectrum))
    img /= img.std(axis=(1, 2), keepdims=True) * 6.0
    out = np.clip(img + 0.5, 0.0, 1.0).astype(np.float32)
    out.flags.writeable = False
    return out


class GaborBank:
    """A seeded population of V1-like Gabor units; call on (N, R, R) grey images -> (N, units), >= 0.

    Output is in units of each cell's response spread on the reference images (so about 0..3).
    """

    def __init__(self, n_units: int, resolution: int = 32, fov_deg: float = 4.0, seed: int = 0,
                 complex_fraction: float = 0.5, rf_spread: float = 0.3):
        if n_units < 1 or resolution < 8 or fov_deg <= 0 or not 0 <= complex_fraction <= 1:
            raise ConfigError("GaborBank needs n_units >= 1, resolution >= 8, fov_deg > 0, complex_fraction in [0, 1]")
        rng = np.random.default_rng([seed, 1])
        self.resolution, self.fov_deg = resolution, fov_deg
        n = n_units
        bins = rng.choice(4, size=n, p=_ORI_WEIGHTS / _ORI_WEIGHTS.sum())
        self.theta = (bins * np.pi / 4 + rng.uniform(-np.pi / 8, np.pi / 8, n)) % np.pi
        nyquist = resolution / (2.0 * fov_deg)
        self.sf = np.exp(rng.uniform(np.log(0.5), np.log(0.8 * nyquist), n))  # cycles / deg
        nx = np.clip(rng.lognormal(np.log(0.4), 0.3, n), 0.2, 1.0)
        ny = np.clip(rng.lognormal(np.log(0.55), 0.3, n), 0.2, 1.2)
        self.sigma_x, self.sigma_y = nx / self.sf, ny / self.sf  # deg
        self.phase = rng.uniform(0, 2 * np.pi, n)
        half = fov_deg / 2.0
        self.cx = np.clip(rng.normal(0.0, rf_spread * half, n), -0.6 * half, 0.6 * half)
        self.cy = np.clip(rng.normal(0.0, rf_spread * half, n), -0.6 * half, 0.6 * half)
        self.is_complex = rng.random(n) < complex_fraction
        grid = (np.arange(resolution) + 0.5) / resolution * fov_deg - half
        gx, gy = np.meshgrid(grid, -grid)  # x right, y up, in deg
        dx = gx[None] - self.cx[:, None, None]
        dy = gy[None] - self.cy[:, None, None]
        c, s = np.cos(self.theta)[:, None, None], np.sin(self.theta)[:, None, None]
        xr, yr = dx * c + dy * s, -dx * s + dy * c
        env = np.exp(-0.5 * ((xr / self.sigma_x[:, None, None]) ** 2 + (yr / self.sigma_y[:, None, None]) ** 2))
        arg = 2 * np.pi * self.sf[:, None, None] * xr + self.phase[:, None, None]
        q0, q1 = env * np.cos(arg), env * np.sin(arg)
        q0 -= q0.mean(axis=(1, 2), keepdims=True)  # no response to uniform luminance
        q1 -= q1.mean(axis=(1, 2), keepdims=True)
        norm = np.sqrt((q0 ** 2).sum(axis=(1, 2)) + (q1 ** 2).sum(axis=(1, 2)))[:, None, None] / np.sqrt(2)
        self.q0 = (q0 / norm).reshape(n, -1).T.astype(np.float32)  # (P, units)
        self.q1 = (q1 / norm).reshape(n, -1).T.astype(np.float32)
        self.scale = np.ones(n, dtype=np.float32)
        ref = self._raw(reference_images(resolution, seed=seed))
        self.scale = (ref.std(axis=0) + 1e-6).astype(np.float32)
        self.ref = ref / self.scale  # responses to the reference images, as __call__ returns them
        self.ref.flags.writeable = False

    def _raw(self, gray: np.ndarray) -> np.ndarray:
        flat = gray.reshape(gray.shape[0], -1)
        a, b = flat @ self.q0, flat @ self.q1
        out = np.where(self.is_complex, np.sqrt(a * a + b * b) / np.sqrt(2.0), np.maximum(a, 0.0))
        return (out / self.scale).astype(np.float32)

    def __call__(self, gray: np.ndarray) -> np.ndarray:
        return self._raw(gray)


class RandomDeepFeatures:
    """Seeded fixed random conv net on (N, R, R) grey images -> {"mid": (N, 128), "deep": (N, 128)},
    each feature z-scored with the reference images' mean and spread.

    Stages: quadrature-energy filters (8 orientations, 7 x 7, stride 2) -> 2 x 2 average pool ->
    random 3 x 3 conv (8 -> 32), ReLU, divisive normalisation ("mid": 2 x 2 average pool) ->
    2 x 2 max pool -> random 3 x 3 conv (32 -> 64), ReLU -> global mean and max ("deep").
    """

    def __init__(self, resolution: int = 32, seed: int = 0):
        import torch

        if resolution < 16:
            raise ConfigError("RandomDeepFeatures needs resolution >= 16")
        g = torch.Generator().manual_seed(int(seed) * 7919 + 17)
        k = 7
        ax = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
        yy, xx = torch.meshgrid(ax, ax, indexing="ij")
        kernels = []
        for theta in torch.arange(8) * torch.pi / 8:
            xr = xx * torch.cos(theta) + yy * torch.sin(theta)
            env = torch.exp(-(xx ** 2 + yy ** 2) / (2 * 1.6 ** 2))
            for fn in (torch.cos, torch.sin):
                q = env * fn(2 * torch.pi * 0.22 * xr)
                kernels.append(q - q.mean())
        self.w1 = torch.stack(kernels)[:, None]  # (16, 1, 7, 7): quadrature pairs
        self.w2 = torch.randn(32, 8, 3, 3, generator=g) * (2.0 / 72) ** 0.5
        self.b2 = -0.1 * torch.rand(32, generator=g)
        self.w3 = torch.randn(64, 32, 3, 3, generator=g) * (2.0 / 288) ** 0.5
        self.b3 = -0.1 * torch.rand(64, generator=g)
        ref = self._raw(torch.from_numpy(np.require(reference_images(resolution, seed=seed), np.float32, ["C", "W"])))
        self.mean = {name: v.mean(0) for name, v in ref.items()}
        self.std = {name: v.std(0) + 1e-4 for name, v in ref.items()}
        self.ref = {k: ((v - self.mean[k]) / self.std[k]).numpy().astype(np.float32) for k, v in ref.items()}
        for v in self.ref.values():
            v.flags.writeable = False

    def _raw(self, gray):
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            x = gray[:, None] - gray.mean(dim=(1, 2), keepdim=True)[:, None]  # (N, 1, R, R)
            q = F.conv2d(x, self.w1, padding=3, stride=2)  # (N, 16, R/2, R/2)
            energy = torch.sqrt(q[:, 0::2] ** 2 + q[:, 1::2] ** 2 + 1e-8)  # (N, 8, R/2, R/2)
            h1 = F.avg_pool2d(energy, 2)  # (N, 8, R/4, R/4)
            h2 = F.relu(F.conv2d(h1, self.w2, self.b2, padding=1))
            h2 = h2 / (1.0 + h2.mean(dim=1, keepdim=True))  # divisive normalisation across channels
            mid = F.adaptive_avg_pool2d(h2, 2).flatten(1)  # (N, 128): coarse layout
            h3 = F.relu(F.conv2d(F.max_pool2d(h2, 2), self.w3, self.b3, padding=1))  # (N, 64, R/8, R/8)
            deep = torch.cat([h3.mean(dim=(2, 3)), h3.amax(dim=(2, 3))], dim=1)  # (N, 128): position invariant
        return {"mid": mid, "deep": deep}

    def __call__(self, gray: np.ndarray) -> dict[str, np.ndarray]:
        import torch

        raw = self._raw(torch.from_numpy(np.require(gray, np.float32, ["C", "W"])))
        return {k: ((v - self.mean[k]) / self.std[k]).numpy().astype(np.float32) for k, v in raw.items()}


@lru_cache(maxsize=16)
def gabor_bank(n_units: int, resolution: int = 32, fov_deg: float = 4.0, seed: int = 0,
               complex_fraction: float = 0.5, rf_spread: float = 0.3) -> GaborBank:
    """A cached ``GaborBank`` (they are fixed by their arguments; treat the result as read-only)."""
    return GaborBank(n_units, resolution, fov_deg, seed, complex_fraction, rf_spread)


@lru_cache(maxsize=8)
def deep_features(resolution: int = 32, seed: int = 0) -> RandomDeepFeatures:
    """A cached ``RandomDeepFeatures`` (read-only)."""
    return RandomDeepFeatures(resolution, seed)


def label_prototypes(labels: np.ndarray, n_units: int, seed: int) -> np.ndarray:
    """A seeded N(0, 1) pattern over ``n_units`` for each distinct label, the same for a label in any call."""
    import zlib

    out = np.zeros((len(labels), n_units), dtype=np.float32)
    cache: dict[str, np.ndarray] = {}
    for i, lab in enumerate(labels):
        key = str(lab)
        if key not in cache:
            cache[key] = np.random.default_rng([seed, 7, zlib.crc32(key.encode())]).standard_normal(n_units)
        out[i] = cache[key]
    return out
