"""brainalign: align vision models with the brain, and measure honestly whether it made them more robust."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("brainalign")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

# The notebook API, imported on first use so that `import brainalign` (and the CLI's start-up) stays light.
_LAZY = {"load_run": "brainalign.analysis.runs", "load_runs": "brainalign.analysis.runs",
         "extract_features": "brainalign.alignment.extract", "linear_cka": "brainalign.alignment.cka"}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'brainalign' has no attribute {name!r}")
