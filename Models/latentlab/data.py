"""MNIST as four tensors on one device, loaded through torchvision from checked IDX files.

The repo bundles the gzip IDX files under ``data/MNIST/raw``; the first run decompresses them
next to themselves (git ignores the result) so ``torchvision.datasets.MNIST`` loads without a
download. Every file is checked (magic, counts, 28x28, labels 0-9) before torchvision reads it,
because torchvision's own reader fails on bad files with a bare ``assert``; then its md5 is
compared with the MNIST release's, re-hashed only when the file's size or mtime changed.
"""
import gzip
import hashlib
import json
import math
import os
import struct
import sys
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from . import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_ROOT = REPO_ROOT / "data"

# md5 of each decompressed file of the MNIST release (LeCun, Cortes & Burges), as data/README.md and
# torchvision list them
RELEASE_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
VERIFIED = ".md5.json"  # beside the files: the size, mtime and md5 of each when last hashed
# name -> (IDX magic, expected item count, item shape)
SPLITS = {
    "train": (("train-images-idx3-ubyte", 2051, 60_000, (28, 28)),
              ("train-labels-idx1-ubyte", 2049, 60_000, ())),
    "test": (("t10k-images-idx3-ubyte", 2051, 10_000, (28, 28)),
             ("t10k-labels-idx1-ubyte", 2049, 10_000, ())),
}


@dataclass
class MNISTTensors:
    x_train: torch.Tensor  # (60000, 784) float32 in [0, 1]
    y_train: torch.Tensor  # (60000,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    md5: dict = field(default_factory=dict)  # of the four files these tensors were read from


def first_test_images(data, n):
    """``data`` with only its first ``n`` test images (``--test-subset``); all of them for None."""
    if n is None:
        return data
    if n > len(data.x_test):
        raise UserError(f"--test-subset {n} is larger than the {len(data.x_test)} test images")
    return replace(data, x_test=data.x_test[:n], y_test=data.y_test[:n])


def check_idx(path, magic, count, shape):
    """Raise UserError unless ``path`` is an uncompressed IDX file with this header and size."""
    path = Path(path)
    size = path.stat().st_size
    ndim = len(shape) + 1
    header_len = 4 * (ndim + 1)
    if size == 0:
        raise UserError(f"{path} is empty; delete it and restore it from data/MNIST/raw/*.gz")
    if size < header_len:
        raise UserError(f"{path} is truncated ({size} bytes, not even an IDX header)")
    with open(path, "rb") as f:
        header = struct.unpack(f">{ndim + 1}I", f.read(header_len))
    if header[0] != magic:
        raise UserError(f"{path} is not an MNIST IDX file (magic {header[0]}, expected {magic})")
    if header[1] != count or tuple(header[2:]) != tuple(shape):
        found = "x".join(map(str, header[1:]))
        wanted = "x".join(map(str, (count, *shape)))
        raise UserError(f"{path} holds {found} items, expected {wanted}")
    expected = header_len + count * math.prod(shape)
    if size != expected:
        raise UserError(f"{path} is truncated or padded ({size} bytes, expected {expected})")


def _decompress(gz_path, target):
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    try:
        with gzip.open(gz_path, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        os.replace(tmp, target)  # never leave a half-written file under the final name
    except (OSError, EOFError, zlib.error) as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot decompress {gz_path}: {e}") from None


def file_md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def checksums(raw):
    """{file name: md5} of the four files in ``raw``; a file is hashed again only when its size or
    mtime differs from what ``raw/.md5.json`` recorded."""
    stamp_path = raw / VERIFIED
    try:
        stamps = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        stamps = {}
    out, changed = {}, False
    for name in RELEASE_MD5:
        st = (raw / name).stat()
        key = [st.st_size, st.st_mtime_ns]
        if stamps.get(name, {}).get("stat") != key:
            stamps[name] = {"stat": key, "md5": file_md5(raw / name)}
            changed = True
        out[name] = stamps[name]["md5"]
    if changed:
        try:
            tmp = stamp_path.with_name(f"{VERIFIED}.tmp{os.getpid()}")
            tmp.write_text(json.dumps(stamps, indent=1))
            os.replace(tmp, stamp_path)
        except OSError:  # a read-only data root: hash again next time
            pass
    return out


def verify(raw, bundled):
    """The files' md5s. One that differs from the MNIST release ends the run for the bundled copy;
    for a user's --data-root (which may hold another IDX data set) it is a one-line warning."""
    sums = checksums(raw)
    bad = [name for name, md5 in RELEASE_MD5.items() if sums[name] != md5]
    if bad and bundled:
        raise UserError(f"{raw / bad[0]} differs from the MNIST release (md5 {sums[bad[0]]}, expected "
                        f"{RELEASE_MD5[bad[0]]}); delete it to extract it again from its .gz, or restore the "
                        f"bundled data with: git checkout data/")
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        print(f"warning: {raw / bad[0]}{more} differs from the MNIST release (md5 {sums[bad[0]]}); "
              f"training on it as given", file=sys.stderr)
    return sums


def prepare_raw(root):
    """Make sure ``root/MNIST/raw`` holds the four checked, uncompressed IDX files."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data root {root} does not exist; pass --data-root DIR with DIR/MNIST/raw inside")
    raw = root / "MNIST" / "raw"
    files = [spec for split in SPLITS.values() for spec in split]
    missing = [name for name, *_ in files
               if not (raw / name).exists() and not (raw / (name + ".gz")).exists()]
    if missing:
        _download(root, raw / missing[0])
    for name, magic, count, shape in files:
        target = raw / name
        if not target.exists():
            _decompress(raw / (name + ".gz"), target)
        check_idx(target, magic, count, shape)
    return raw


def _download(root, first_missing):
    """Last resort for a user-given root without the files; this repo's own copy never needs it."""
    from torchvision.datasets import MNIST  # lazy: only this fallback needs torchvision (see load_mnist)
    try:
        for train in (True, False):
            MNIST(root, train=train, download=True)
    except Exception:  # no network here: any failure means "not available"
        raise UserError(f"MNIST file {first_missing} (or .gz) is missing and could not be downloaded; "
                        f"copy the four MNIST IDX files into {first_missing.parent}") from None


def read_idx(path, count, shape):
    """The body of an IDX file that ``check_idx`` has accepted, as a uint8 tensor (count, *shape)."""
    header_len = 4 * (len(shape) + 2)
    body = Path(path).read_bytes()[header_len:]
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(count, *shape)


def load_mnist(root=None, device="cpu"):
    """Return the checked MNIST splits as flat float tensors resident on ``device``.

    The IDX files are read directly, not through torchvision's MNIST class: importing torchvision
    pulls in its models and torch._dynamo, a slow import on every run.
    """
    root = Path(root) if root is not None else DEFAULT_DATA_ROOT
    raw = prepare_raw(root)
    md5 = verify(raw, bundled=root.resolve() == DEFAULT_DATA_ROOT.resolve())
    out = []
    for (images, _, count, shape), (labels, *_) in SPLITS.values():
        x, y = read_idx(raw / images, count, shape), read_idx(raw / labels, count, ()).long()
        if int(y.min()) < 0 or int(y.max()) > 9:
            raise UserError(f"labels in {raw} are outside 0-9")
        out += [x.reshape(count, -1).to(device=device, dtype=torch.float32).div_(255.0), y.to(device)]
    return MNISTTensors(*out, md5=md5)
