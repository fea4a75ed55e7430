"""Pickled data files are read by a restricted unpickler: a file that asks for anything but numpy arrays
and plain containers is refused, and nothing in it runs."""

import os
import pickle

import numpy as np
import pytest

from brainalign.errors import DataError
from brainalign.neural import load_recording
from brainalign.neural.safe_pickle import LazyArray, as_float32, load_npy, load_pickle


class Payload:
    """Unpickling this would run os.system and create a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_things_eeg2_file_that_runs_code_is_refused(tmp_path, formats):
    sub = formats.write_things(tmp_path)
    marker = tmp_path / "PWNED"
    np.save(sub / "preprocessed_eeg_training.npy",
            {"preprocessed_eeg_data": np.zeros((6, 4, 17, 100)), "ch_names": Payload(marker), "times": np.zeros(100)})
    with pytest.raises(DataError, match="preprocessed_eeg_training.npy: unsafe pickle, refused to load posix.system"):
        load_recording("things_eeg2", path=sub)
    assert not marker.exists()
    # the planted file really carries the call (so the refusal above is what kept it from running)
    import pickletools

    raw = (sub / "preprocessed_eeg_training.npy").read_bytes()
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(raw[raw.index(b"\n") + 1:])]
    assert ("SHORT_BINUNICODE", "system") in ops and ("SHORT_BINUNICODE", f"touch {marker}") in ops


@pytest.mark.parametrize("target", ["image_metadata", "cadena", "algonauts_mapping"])
def test_other_pickled_files_are_restricted(tmp_path, formats, target):
    marker = tmp_path / "PWNED"
    if target == "image_metadata":
        sub = formats.write_things(tmp_path)
        np.save(tmp_path / "image_set" / "image_metadata.npy", np.array(Payload(marker), dtype=object))
        call = lambda: load_recording("things_eeg2", path=sub)  # noqa: E731
    elif target == "cadena":
        path = tmp_path / "cadena_ploscb_data.pkl"
        with open(path, "wb") as f:
            pickle.dump({"images": np.zeros((2, 4, 4)), "responses": Payload(marker)}, f)
        call = lambda: load_recording("cadena2019", path=path)  # noqa: E731
    else:
        formats.write_algonauts(tmp_path)
        np.save(tmp_path / "subj01" / "roi_masks" / "mapping_prf-visualrois.npy", {1: Payload(marker)})
        call = lambda: load_recording("algonauts2023", path=tmp_path)  # noqa: E731
    with pytest.raises(DataError, match="unsafe pickle"):
        call()
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [
    ("builtins", "eval"), ("builtins", "getattr"), ("builtins", "__import__"), ("subprocess", "Popen"),
    ("numpy", "load"), ("numpy.testing._private.utils", "runstring"), ("numpy.core.multiarray", "frombuffer"),
])
def test_only_allowlisted_globals(tmp_path, module, name):
    path = tmp_path / "x.pkl"
    # protocol-2 GLOBAL opcode naming module.name, called with a string, then STOP
    path.write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X\x01\x00\x00\x001\x85R.")
    with pytest.raises(DataError, match=f"refused to load {module}.{name}"):
        load_pickle(path)


def test_reconstruct_only_builds_ndarray(tmp_path):
    path = tmp_path / "x.pkl"
    # numpy.core.multiarray._reconstruct(numpy.dtype, (0,), b'b')
    path.write_bytes(b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\ndtype\nK\x00\x85C\x01b\x87R.")
    with pytest.raises(DataError, match="may only build numpy.ndarray"):
        load_pickle(path)


def test_no_memory_bombs_through_allowed_names(tmp_path):
    path = tmp_path / "x.pkl"
    # builtins.bytearray(10**12): protocol-2 GLOBAL, LONG1 argument, TUPLE1, REDUCE
    path.write_bytes(b"\x80\x02cbuiltins\nbytearray\n\x8a\x05\x00\x10\xa5\xd4\xe8\x85R.")
    with pytest.raises(DataError, match="bytearray may only be built from bytes or str"):
        load_pickle(path)


def test_plain_containers_and_arrays_round_trip(tmp_path):
    data = {"a": [1, 2.5, "x", None, True, 1 + 2j, bytearray(b"ab")], "b": (3, {"c": {4, 5}}),
            "arr": np.arange(6).reshape(2, 3),
            "obj": np.array(["p", "qq"], dtype=object), "scalar": np.float32(1.5), "f": np.asfortranarray(np.eye(3))}
    for protocol in (2, 3, 4, 5):
        path = tmp_path / f"p{protocol}.pkl"
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=protocol)
        out = load_pickle(path)
        assert out["a"] == data["a"] and out["b"] == data["b"] and out["scalar"] == np.float32(1.5)
        np.testing.assert_array_equal(out["arr"], data["arr"])
        np.testing.assert_array_equal(out["f"], data["f"])
        assert out["obj"].tolist() == ["p", "qq"]


def test_large_arrays_stay_on_disk_until_converted(tmp_path):
    big = np.random.default_rng(0).normal(size=(100, 4, 17, 10))  # > 64 kB: pickled outside protocol-4 frames
    fortran = np.asfortranarray(np.random.default_rng(1).normal(size=(300, 50)))
    np.save(tmp_path / "d.npy", {"x": big, "f": fortran, "small": np.arange(3.0)})
    out = load_npy(tmp_path / "d.npy", lazy_bytes=1024)
    assert isinstance(out["x"], LazyArray) and isinstance(out["f"], LazyArray)
    assert isinstance(out["small"], np.ndarray)
    np.testing.assert_array_equal(as_float32(out["x"]), big.astype(np.float32))
    np.testing.assert_array_equal(as_float32(out["f"]), fortran.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(out["x"]), big)


def test_large_non_array_payload_is_refused(tmp_path):
    path = tmp_path / "x.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blob": b"\x01" * 4096}, f, protocol=4)
    with pytest.raises(DataError, match="only numpy arrays may be large"):
        load_pickle(path, lazy_bytes=1024)


def test_truncated_array_data_is_reported(tmp_path):
    np.save(tmp_path / "d.npy", {"x": np.zeros((64, 64))})
    raw = (tmp_path / "d.npy").read_bytes()
    (tmp_path / "d.npy").write_bytes(raw[:-2000])
    with pytest.raises(DataError, match="d.npy: .*truncated"):
        load_npy(tmp_path / "d.npy", lazy_bytes=1024)
    (tmp_path / "e.npy").write_bytes(b"not a numpy file at all")
    with pytest.raises(DataError, match="e.npy: not a valid .npy file"):
        load_npy(tmp_path / "e.npy")


def test_float32_conversion_needs_about_one_float32_copy(tmp_path):
    """Resident memory (not allocations: the skipped payload buffer is reserved but never touched)."""
    import subprocess
    import sys

    n = 5_000_000  # 40 MB of float64 on disk, 20 MB as float32
    np.save(tmp_path / "d.npy", {"preprocessed_eeg_data": np.ones(n).reshape(5000, 4, 250), "times": np.zeros(3)})
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux /proc to measure peak resident memory")
    # VmHWM reset after the imports; ru_maxrss is inherited from this (large) pytest process on Linux.
    script = (
        "import sys\n"
        "from brainalign.neural.safe_pickle import as_float32, load_npy\n"
        "kib = lambda key: int(next(l for l in open('/proc/self/status') if l.startswith(key + ':')).split()[1])\n"
        "before = kib('VmRSS')\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "out = as_float32(load_npy(sys.argv[1])['preprocessed_eeg_data'])\n"
        "print(out.dtype, out.shape, float(out.sum()), (kib('VmHWM') - before) * 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "d.npy")], capture_output=True,
                            text=True, check=True)
    dtype, *shape_and_rest = result.stdout.split()
    growth = float(shape_and_rest[-1])
    assert dtype == "float32" and float(shape_and_rest[-2]) == n
    assert growth < 1.5 * n * 4
