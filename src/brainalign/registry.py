"""Extension points: one small ``Registry`` class and one instance per kind of component.

Register with a decorator::

    @MODELS.register("small_cnn", description="4-layer CNN for small grayscale images")
    def small_cnn(num_classes: int, in_channels: int, **kw) -> BrainModel: ...

A duplicate name raises; a failed lookup names the valid entries. ``info`` holds the
entry's facts (a frozen dataclass of the component's choosing) so that the CLI, docs
and tests read them instead of hard-coding lists.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from brainalign.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    description: str
    info: Any = None


class Registry(Generic[T]):
    """A name -> component table with strict lookups."""

    def __init__(self, kind: str, modules: tuple[str, ...] = (),
                 wrap: Callable[[str, Any], Any] | None = None):
        self.kind = kind
        # wrap(name, obj): what registration returns and stores instead of obj (the attacks' entry checks).
        self._wrap = wrap
        self._entries: dict[str, Entry[T]] = {}
        # Modules whose import registers this kind's entries; imported lazily on first lookup.
        self._modules = modules
        self._loaded = not modules

    def register(self, name: str, *, description: str = "", info: Any = None) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            doc = description or (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
            if self._wrap is not None:
                obj = self._wrap(name, obj)
            self._entries[name] = Entry(name, obj, doc, info)
            return obj

        return decorator

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._modules:
                importlib.import_module(module)

    def entry(self, name: str) -> Entry[T]:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(sorted(self._entries)) or "(none registered)"
            raise ConfigError(f"unknown {self.kind} {name!r}; valid: {valid}") from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def info(self, name: str) -> Any:
        return self.entry(name).info

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def entries(self) -> Iterator[Entry[T]]:
        self._load()
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __len__(self) -> int:
        self._load()
        return len(self._entries)


DATASETS: Registry[Callable[..., Any]] = Registry("dataset", ("brainalign.data",))
MODELS: Registry[Callable[..., Any]] = Registry("model", ("brainalign.models",))
REGULARIZERS: Registry[Callable[..., Any]] = Registry("regularizer", ("brainalign.regularizers",))
def _attack_entry(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    from brainalign.attacks.base import attack_entry

    return attack_entry(name, fn)


ATTACKS: Registry[Callable[..., Any]] = Registry("attack", ("brainalign.attacks",), wrap=_attack_entry)
NEURAL_LOADERS: Registry[Callable[..., Any]] = Registry("neural loader", ("brainalign.neural",))
DEFENCES: Registry[Callable[..., Any]] = Registry("defence", ("brainalign.defences",))

ALL = {
    "datasets": DATASETS,
    "models": MODELS,
    "regularizers": REGULARIZERS,
    "attacks": ATTACKS,
    "neural": NEURAL_LOADERS,
    "defences": DEFENCES,
}
