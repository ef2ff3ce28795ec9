import gzip
import struct

import numpy as np
import pytest
import torch

from latentlab import UserError
from latentlab.data import SPLITS, check_idx, load_mnist, prepare_raw


def write_idx(path, magic, dims, payload=None, cut=0):
    """A tiny IDX file: big-endian magic and sizes, then uint8 data (optionally ``cut`` bytes short)."""
    count = int(np.prod(dims))
    data = np.asarray(payload if payload is not None else np.arange(count) % 10, dtype=np.uint8).tobytes()
    raw = struct.pack(f">{len(dims) + 1}I", magic, *dims) + data
    path.write_bytes(raw[:len(raw) - cut] if cut else raw)
    return path


def test_valid_small_files_pass(tmp_path):
    check_idx(write_idx(tmp_path / "img", 2051, (3, 28, 28)), 2051, 3, (28, 28))
    check_idx(write_idx(tmp_path / "lab", 2049, (3,)), 2049, 3, ())


@pytest.mark.parametrize("case, match", [
    ("empty", "is empty"),
    ("header_only_part", "truncated"),
    ("truncated", "truncated"),
    ("magic", "magic 2049, expected 2051"),
    ("count", "holds 4x28x28 items, expected 3x28x28"),
    ("size", "holds 3x27x28 items"),
])
def test_bad_files_raise_one_clear_error(tmp_path, case, match):
    p = tmp_path / "img"
    if case == "empty":
        p.write_bytes(b"")
    elif case == "header_only_part":
        p.write_bytes(b"\x00\x00\x08")
    elif case == "truncated":
        write_idx(p, 2051, (3, 28, 28), cut=100)
    elif case == "magic":
        write_idx(p, 2049, (3, 28, 28))
    elif case == "count":
        write_idx(p, 2051, (4, 28, 28))
    elif case == "size":
        write_idx(p, 2051, (3, 27, 28))
    with pytest.raises(UserError, match=match):
        check_idx(p, 2051, 3, (28, 28))


def test_missing_root_and_files(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="does not exist"):
        prepare_raw(tmp_path / "nowhere")
    # no network here: the download fallback must fail into one clear line, not a traceback
    import torchvision.datasets
    monkeypatch.setattr(torchvision.datasets.MNIST, "download", lambda self: (_ for _ in ()).throw(OSError("offline")))
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    with pytest.raises(UserError, match="missing and could not be downloaded"):
        prepare_raw(tmp_path)


def test_corrupt_gzip_is_reported(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split in SPLITS.values():
        for name, *_ in split:
            (raw / (name + ".gz")).write_bytes(gzip.compress(b"\x00" * 64)[:20])
    with pytest.raises(UserError, match="cannot decompress"):
        prepare_raw(tmp_path)
    assert not list(raw.glob("*-ubyte")), "no half-written file may keep the final name"


def test_label_range_checked(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split in SPLITS.values():
        (img, im_magic, n, shape), (lab, lab_magic, _, _) = split
        write_idx(raw / img, im_magic, (n, *shape), payload=np.zeros(n * 784, np.uint8))
        write_idx(raw / lab, lab_magic, (n,), payload=np.full(n, 11, np.uint8))
    with pytest.raises(UserError, match="outside 0-9"):
        load_mnist(tmp_path)


def test_bundled_mnist_loads_checked():
    d = load_mnist()
    assert d.x_train.shape == (60_000, 784) and d.x_test.shape == (10_000, 784)
    assert d.x_train.dtype == torch.float32 and 0 <= float(d.x_train.min()) and float(d.x_train.max()) == 1
    assert sorted(d.y_train.unique().tolist()) == list(range(10))
    assert abs(float(d.x_train.mean()) - 0.1307) < 1e-3  # the well-known MNIST pixel mean
