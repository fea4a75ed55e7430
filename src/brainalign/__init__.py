"""brainalign: align vision models with the brain, and measure honestly whether it made them more robust."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("brainalign")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
