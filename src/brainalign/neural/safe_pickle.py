"""Read pickled neural data (THINGS-EEG2 ``.npy`` dicts, the Cadena 2019 ``.pkl``) without running code.

A pickle can name any importable callable, so ``np.load(allow_pickle=True)`` or ``pickle.load`` on a
downloaded file would run whatever the file asks for. Here the payload goes through a
``pickle.Unpickler`` whose ``find_class`` admits only:

- numpy's array reconstruction helpers (``numpy[._]core.multiarray._reconstruct``, ``numpy.ndarray``,
  ``numpy.dtype``, ``numpy[._]core.multiarray.scalar``, ``numpy[._]core.numeric._frombuffer``), each
  replaced by a stand-in written here that only records shapes, dtypes and bytes;
- plain containers that have no opcode of their own (``set``, ``frozenset``, ``bytearray``, ``complex``,
  ``collections.OrderedDict``) and ``_codecs.encode`` restricted to latin-1 (how protocol-2 pickles store bytes).

Anything else (``os.system``, ``builtins.eval``, any other numpy function) is refused with a ``DataError``
before it is called.

Large arrays are not copied into memory: when the unpickler asks to fill a buffer of at least
``LAZY_BYTES``, the reader records the file offset and skips the bytes, and the array comes back as a
``LazyArray`` that reads (or memory-maps) that region later. A THINGS-EEG2 training file
(16540 x 4 x 17 x 100 float64, 0.9 GB) therefore converts to float32 with about 1x the float32 size in
memory instead of the 2x float64 that ``np.load`` needs.
"""

from __future__ import annotations

import collections
import mmap
import os
import pickle
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.lib import format as npy_format

from brainalign.errors import DataError

LAZY_BYTES = 1 << 20  # payloads at least this large are left on disk
_TOKEN_BYTES = 16
_CHUNK_BYTES = 8 << 20


def _anonymous_map(nbytes: int) -> mmap.mmap:
    """Zeroed writable memory; pre-faulted in one call where the OS allows (Linux MAP_POPULATE)."""
    if hasattr(mmap, "MAP_POPULATE") and hasattr(mmap, "MAP_ANONYMOUS"):
        return mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE)
    return mmap.mmap(-1, nbytes)


@dataclass(frozen=True)
class LazyArray:
    """An array whose bytes stay in a file: ``path`` at ``offset``, C or Fortran order."""

    path: Path
    offset: int
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran: bool = False

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def memmap(self) -> np.memmap:
        """A read-only memory map of the array (no copy)."""
        return np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape,
                         order="F" if self.fortran else "C")

    def to(self, dtype=np.float32) -> np.ndarray:
        """Read the array converted to ``dtype``, in chunks, so memory peaks at the output plus one chunk.

        The output lives in an anonymous memory map rather than numpy's allocator: numpy asks the kernel
        for transparent huge pages on large arrays, and where THP defrag is "madvise" the first touch of
        a fresh 0.5 GB array can stall for seconds in page compaction; the map is also pre-faulted in
        one call instead of page by page.
        """
        dtype = np.dtype(dtype)
        count = int(np.prod(self.shape, dtype=np.int64))
        if count == 0:
            return np.empty(self.shape, dtype=dtype)
        out = np.frombuffer(_anonymous_map(count * dtype.itemsize), dtype=dtype, count=count).reshape(self.shape)
        if self.fortran:  # rare: chunk along the last axis of a memory map
            mm = self.memmap()
            step = max(1, _CHUNK_BYTES // max(1, self.nbytes // self.shape[-1]))
            for j in range(0, self.shape[-1], step):
                out[..., j:j + step] = mm[..., j:j + step]
            del mm
            return out
        flat = out.reshape(-1)
        # Chunks of 1..8 MB and at most 1/16 of the data, so the buffer stays small beside the output.
        chunk_bytes = min(_CHUNK_BYTES, max(1 << 20, self.nbytes // 16))
        per_chunk = max(1, chunk_bytes // self.dtype.itemsize)
        buffer = np.empty(min(per_chunk, flat.size), dtype=self.dtype)
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            for start in range(0, flat.size, per_chunk):
                n = min(per_chunk, flat.size - start)
                view = buffer[:n]
                got = f.readinto(memoryview(view).cast("B"))
                if got != n * self.dtype.itemsize:
                    raise DataError(f"{self.path}: file is truncated (array data ends early)")
                flat[start:start + n] = view
        return out

    def __array__(self, dtype=None, copy=None):
        return self.to(dtype or self.dtype)


class _Reader:
    """File wrapper for ``pickle.Unpickler`` that skips large buffers and remembers where they are."""

    def __init__(self, f: BinaryIO, path: Path, lazy_bytes: int):
        self._f = f
        self.path = path
        self._lazy_bytes = lazy_bytes
        self._size = os.fstat(f.fileno()).st_size
        self.deferred: dict[bytes, tuple[int, int]] = {}  # token -> (file offset of the payload, length)

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)

    def readline(self) -> bytes:
        return self._f.readline()

    def readinto(self, buf) -> int:
        n = len(buf)
        if n < self._lazy_bytes:
            return self._f.readinto(buf)
        start = self._f.tell()
        if start + n > self._size:
            raise DataError(f"{self.path}: file is truncated ({start + n - self._size} bytes of array data missing)")
        # Only the first bytes are written: a token that tells which payload this buffer stands for.
        # The rest of the buffer is never touched and never returned to the caller.
        token = secrets.token_bytes(_TOKEN_BYTES)
        memoryview(buf)[:_TOKEN_BYTES] = token
        self.deferred[token] = (start, n)
        self._f.seek(n, os.SEEK_CUR)
        return n


class _ArrayStub:
    """Stands in for ``numpy.ndarray`` during unpickling; ``__setstate__`` only records the state."""

    __slots__ = ("state",)

    def __init__(self):
        self.state = None

    def __setstate__(self, state):
        self.state = state


class _DtypeStub:
    __slots__ = ()


def _reconstruct(cls, shape, typecode):
    if cls is not _ArrayStub:
        raise pickle.UnpicklingError("_reconstruct may only build numpy.ndarray")
    return _ArrayStub()


def _scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError("numpy scalar without a dtype")
    if dtype.hasobject:
        return data
    if isinstance(data, str):
        data = data.encode("latin-1")
    if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError("numpy scalar with malformed bytes")
    return np.frombuffer(data, dtype=dtype)[0]


class _FromBuffer:
    """Stand-in for numpy's protocol-5 helper ``_frombuffer(buffer, dtype, shape, order)``."""

    __slots__ = ("args",)

    def __init__(self, *args):
        self.args = args


def _bytearray(source=b"", *args):
    """``bytearray`` from bytes or str only: ``bytearray(10**12)`` in a pickle would be a memory bomb."""
    if not isinstance(source, (bytes, bytearray, str)):
        raise pickle.UnpicklingError("bytearray may only be built from bytes or str")
    return bytearray(source, *args)


def _latin1_encode(obj, encoding="utf-8", errors="strict"):
    if encoding not in ("latin1", "latin-1") or not isinstance(obj, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return obj.encode("latin-1")


_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMPY_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")
_BUILTINS = ("builtins", "__builtin__")
_ALLOWED: dict[tuple[str, str], Any] = {
    **{(m, "_reconstruct"): _reconstruct for m in _NUMPY_CORE},
    **{(m, "scalar"): _scalar for m in _NUMPY_CORE},
    **{(m, "_frombuffer"): _FromBuffer for m in _NUMPY_NUMERIC},
    ("numpy", "ndarray"): _ArrayStub,
    ("numpy", "dtype"): np.dtype,
    **{(b, name): obj for b in _BUILTINS for name, obj in
       (("set", set), ("frozenset", frozenset), ("bytearray", _bytearray), ("complex", complex))},
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the names in the allow-list above."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}") from None


def _as_bytes(raw) -> bytes | bytearray | memoryview:
    if isinstance(raw, str):  # Python 2 pickles read with encoding="latin1"
        return raw.encode("latin-1")
    if isinstance(raw, (bytes, bytearray)):
        return raw
    if isinstance(raw, pickle.PickleBuffer):
        return raw.raw()
    raise DataError(f"array data of type {type(raw).__name__}")


class _Builder:
    """Turns the stubs left by the unpickler into numpy arrays or ``LazyArray``s."""

    def __init__(self, reader: _Reader):
        self.reader = reader
        self.used: set[bytes] = set()
        self._done: dict[int, Any] = {}

    def _lazy_or_array(self, raw, dtype: np.dtype, shape: tuple[int, ...], fortran: bool):
        if dtype.hasobject:
            raise DataError("object array with raw byte data")
        count = int(np.prod(shape, dtype=np.int64))
        if count * dtype.itemsize != len(raw):
            raise DataError(f"array data has {len(raw)} bytes; shape {shape} of {dtype} needs "
                            f"{count * dtype.itemsize}")
        if len(raw) >= self.reader._lazy_bytes and not isinstance(raw, str):
            for token, (offset, n) in self.reader.deferred.items():
                head = len(raw) - n  # bytes the unpickler already had buffered before it asked for the rest
                if head >= 0 and bytes(raw[head:head + _TOKEN_BYTES]) == token:
                    self.used.add(token)
                    return LazyArray(self.reader.path, offset - head, dtype, shape, fortran)
        data = np.frombuffer(_as_bytes(raw), dtype=dtype)
        return data.reshape(shape, order="F" if fortran else "C").copy()

    def _array(self, stub: _ArrayStub):
        state = stub.state
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise DataError("malformed numpy array state")
        shape, dtype, fortran, raw = state[-4:]
        if not isinstance(dtype, np.dtype):
            raise DataError("numpy array without a dtype")
        if not isinstance(shape, tuple) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise DataError(f"malformed numpy array shape {shape!r}")
        if dtype.hasobject:
            items = self.build(raw)
            if not isinstance(items, list) or len(items) != int(np.prod(shape, dtype=np.int64)):
                raise DataError("object array with the wrong number of items")
            arr = np.empty(len(items), dtype=object)
            arr[:] = items
            return arr.reshape(shape, order="F" if fortran else "C")
        return self._lazy_or_array(raw, dtype, shape, bool(fortran))

    def _frombuffer(self, stub: _FromBuffer):
        if len(stub.args) != 4:
            raise DataError("malformed numpy buffer state")
        raw, dtype, shape, order = stub.args
        if not isinstance(dtype, np.dtype) or not isinstance(shape, tuple):
            raise DataError("malformed numpy buffer state")
        return self._lazy_or_array(_as_bytes(raw), dtype, shape, order == "F")

    def build(self, obj, depth: int = 0):
        if depth > 100:
            raise DataError("pickle nests deeper than 100 levels")
        key = id(obj)
        if key in self._done:
            return self._done[key]
        if isinstance(obj, _ArrayStub):
            out = self._array(obj)
        elif isinstance(obj, _FromBuffer):
            out = self._frombuffer(obj)
        elif isinstance(obj, dict):
            out = type(obj)()
            self._done[key] = out
            for k, v in obj.items():
                out[self.build(k, depth + 1)] = self.build(v, depth + 1)
            return out
        elif isinstance(obj, list):
            out = []
            self._done[key] = out
            out.extend(self.build(v, depth + 1) for v in obj)
            return out
        elif isinstance(obj, tuple):
            out = tuple(self.build(v, depth + 1) for v in obj)
        elif isinstance(obj, (set, frozenset)):
            out = type(obj)(self.build(v, depth + 1) for v in obj)
        elif isinstance(obj, (bytes, bytearray)) and len(obj) >= self.reader._lazy_bytes:
            # A large payload that is not array data: it was never read from disk.
            raise DataError("large non-array payload (only numpy arrays may be large)")
        else:
            out = obj
        self._done[key] = out
        return out


def _unpickle(f: BinaryIO, path: Path, lazy_bytes: int):
    reader = _Reader(f, path, lazy_bytes)
    try:
        raw = RestrictedUnpickler(reader, encoding="latin1").load()
        builder = _Builder(reader)
        obj = builder.build(raw)
    except DataError as exc:
        msg = str(exc)
        raise DataError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    except pickle.UnpicklingError as exc:
        if str(exc).startswith("refused"):
            raise DataError(f"{path}: unsafe pickle, {exc}; only numpy arrays, dicts, lists, strings and "
                            "numbers are accepted") from None
        raise DataError(f"{path}: truncated or corrupt pickle ({exc})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError,
            OverflowError, RecursionError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: truncated or corrupt pickle ({type(exc).__name__}: {exc})") from None
    if set(reader.deferred) - builder.used:
        raise DataError(f"{path}: large payload that is not array data")
    return obj


def load_pickle(path: str | os.PathLike, *, lazy_bytes: int = LAZY_BYTES) -> Any:
    """Read a plain pickle file (e.g. the Cadena 2019 ``.pkl``) through the restricted unpickler.

    Returns dicts, lists, strings, numbers, numpy arrays, and ``LazyArray`` for arrays of at least
    ``lazy_bytes`` bytes. Raises ``DataError`` for anything else or a truncated file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _unpickle(f, path, lazy_bytes)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a pickle file") from None


def read_npy_header(f: BinaryIO, path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Parse an ``.npy`` header (versions 1-3) and leave ``f`` at the start of the data."""
    try:
        version = npy_format.read_magic(f)
        if version == (1, 0):
            return npy_format.read_array_header_1_0(f)
        if version == (2, 0):
            return npy_format.read_array_header_2_0(f)
        if version == (3, 0) and hasattr(npy_format, "_read_array_header"):
            return npy_format._read_array_header(f, version)
        raise DataError(f"{path}: unsupported .npy format version {version}")
    except DataError:
        raise
    except (ValueError, SyntaxError, EOFError) as exc:
        raise DataError(f"{path}: not a valid .npy file ({exc})") from None


def load_npy(path: str | os.PathLike, *, mmap: bool = False, lazy_bytes: int = LAZY_BYTES) -> Any:
    """Load an ``.npy`` file safely.

    Plain (non-object) arrays are read with ``allow_pickle=False`` (memory-mapped if ``mmap``).
    Object arrays hold a pickle: it is read by the restricted unpickler, and a 0-d object array
    (how ``np.save(path, dict)`` stores a dict) returns its item.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            shape, fortran, dtype = read_npy_header(f, path)
            if not dtype.hasobject:
                data_start = f.tell()
                count = int(np.prod(shape, dtype=np.int64))
                needed = data_start + count * dtype.itemsize
                size = os.fstat(f.fileno()).st_size
                if size < needed:
                    raise DataError(f"{path}: file is truncated ({needed - size} bytes of array data missing)")
                if mmap:
                    return np.load(path, mmap_mode="r", allow_pickle=False)
                return np.load(path, allow_pickle=False)
            obj = _unpickle(f, path, lazy_bytes)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected an .npy file") from None
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == () and shape == ():
        return obj.item()
    if isinstance(obj, np.ndarray) and obj.shape != tuple(shape):
        raise DataError(f"{path}: header says shape {shape} but the data has {obj.shape}")
    return obj


def as_float32(array, *, path: str | os.PathLike = "", what: str = "array") -> np.ndarray:
    """Convert an ``np.ndarray`` or ``LazyArray`` of numbers to float32 (chunked for lazy arrays)."""
    if isinstance(array, LazyArray):
        if array.dtype.kind not in "fiu":
            raise DataError(f"{path}: {what} has dtype {array.dtype}, expected numbers")
        return array.to(np.float32)
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiub":
        kind = type(array).__name__ if not isinstance(array, np.ndarray) else str(array.dtype)
        raise DataError(f"{path}: {what} is {kind}, expected a numeric array")
    return np.asarray(array, dtype=np.float32)
