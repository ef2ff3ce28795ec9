"""Bad input ends in one clear line and exit code 2; failed or interrupted runs keep the last good results."""
import hashlib
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from conftest import MODELS, REPO, SCRIPTS, SPECS, read_metrics, run_script
from latentlab import cli
from latentlab.checkpoints import resume_path, save_resume
from latentlab.data import DEFAULT_DATA_ROOT, SPLITS, load_mnist, prepare_raw
from latentlab.models import build_model
from latentlab.training import StopFlag, TrainState, make_optimizer, train_epoch

AE2, VAE2 = SPECS["ae2"], SPECS["vae2"]


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def run_inprocess(spec, argv, capsys):
    """Call a script's main() as the command line would; return (exit code, stderr)."""
    with pytest.raises(SystemExit) as e:
        cli.main(spec, argv=[str(a) for a in argv])
    err = capsys.readouterr().err
    return e.value.code, err


def assert_one_line_error(code, err, match):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and match in err, err


@pytest.fixture
def good_results(tiny_runs, tmp_path):
    """A copy of a finished AE-2D results folder, and its byte digest."""
    folder = tmp_path / "results"
    shutil.copytree(tiny_runs["ae2"], folder)
    return folder, digest(folder)


@pytest.mark.parametrize("argv, match", [
    (["--epochs", "0"], "--epochs: '0' must be a positive"),
    (["--epochs", "ten"], "--epochs: 'ten' is not a number"),
    (["--epochs", "2.5"], "--epochs: '2.5' is not an integer"),
    (["--batch-size", "-4"], "--batch-size: '-4' must be a positive"),
    (["--lr", "0"], "--lr: '0' must be a positive"),
    (["--lr", "nan"], "--lr: 'nan' must be a positive"),
    (["--lr", "fast"], "--lr: 'fast' is not a number"),
    (["--train-subset", "0"], "--train-subset: '0' must be a positive"),
    (["--train-subset", "-3"], "--train-subset: '-3' must be a positive"),
    (["--train-subset", "70000"], "larger than the 60000 training images"),
    (["--device", "tpu"], "unknown --device 'tpu'"),
    (["--plots-only", "--resume"], "exclude each other"),
    (["--plots-only", "--lean"], "exclude each other"),
    (["--beta", "1"], "unrecognized arguments: --beta"),  # the AE has no KL term to weigh
])
def test_bad_flags(argv, match, capsys, tmp_path):
    code, err = run_inprocess(AE2, [*argv, "--out", tmp_path / "r"], capsys)
    assert_one_line_error(code, err, match)
    assert not (tmp_path / "r").exists()
    assert not list(tmp_path.glob(".r.staging-*"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_where_there_is_none(device, capsys, tmp_path):
    code, err = run_inprocess(AE2, ["--device", device, "--out", tmp_path / "r"], capsys)
    assert_one_line_error(code, err, "no CUDA GPU")


@pytest.mark.skipif(getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
                    reason="this machine has MPS")
def test_mps_where_there_is_none(capsys, tmp_path):
    code, err = run_inprocess(AE2, ["--device", "mps", "--out", tmp_path / "r"], capsys)
    assert_one_line_error(code, err, "no usable MPS")


def test_out_is_a_file_or_unwritable(capsys, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    code, err = run_inprocess(AE2, ["--out", f], capsys)
    assert_one_line_error(code, err, "is a file")
    code, err = run_inprocess(AE2, ["--out", f / "sub"], capsys)
    assert_one_line_error(code, err, "cannot write results")
    code, err = run_inprocess(AE2, ["--out", "/proc/no_results_here"], capsys)
    assert_one_line_error(code, err, "cannot write results")


def _data_root(tmp_path, broken=None, how=None):
    """A data root with links to the real files, one of them replaced by a broken copy."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    real = prepare_raw(DEFAULT_DATA_ROOT)
    for split in SPLITS.values():
        for name, *_ in split:
            if name != broken:
                (raw / name).symlink_to(real / name)
    if broken:
        data = (real / broken).read_bytes()
        if how == "truncated":
            data = data[:len(data) // 2]
        elif how == "empty":
            data = b""
        elif how == "magic":
            data = b"\x00\x00\x08\x01" + data[4:]
        elif how == "count":
            data = data[:4] + (59_999).to_bytes(4, "big") + data[8:]
        if how != "missing":
            (raw / broken).write_bytes(data)
    return tmp_path / "data"


@pytest.mark.parametrize("broken, how, match", [
    ("train-images-idx3-ubyte", "truncated", "truncated or padded"),
    ("t10k-labels-idx1-ubyte", "empty", "is empty"),
    ("t10k-images-idx3-ubyte", "magic", "not an MNIST IDX file"),
    ("train-labels-idx1-ubyte", "count", "holds 59999 items, expected 60000"),
    ("train-images-idx3-ubyte", "missing", "missing and could not be downloaded"),
])
def test_broken_data_keeps_last_good_results(broken, how, match, good_results, capsys, tmp_path, monkeypatch):
    import torchvision.datasets
    monkeypatch.setattr(torchvision.datasets.MNIST, "download",
                        lambda self: (_ for _ in ()).throw(OSError("offline")))
    folder, before = good_results
    root = _data_root(tmp_path, broken, how)
    code, err = run_inprocess(AE2, ["--data-root", root, "--out", folder], capsys)
    assert_one_line_error(code, err, match)
    assert digest(folder) == before


def test_missing_data_root(capsys, tmp_path):
    code, err = run_inprocess(AE2, ["--data-root", tmp_path / "nope", "--out", tmp_path / "r"], capsys)
    assert_one_line_error(code, err, "does not exist")


def test_non_finite_loss_stops_and_keeps_results(good_results, capsys, monkeypatch):
    from latentlab import training
    real = training.batch_loss

    def poisoned(model, x, *args):
        loss, rec, kl = real(model, x, *args)
        return loss * float("nan"), rec, kl

    monkeypatch.setattr(training, "batch_loss", poisoned)
    folder, before = good_results
    code, err = run_inprocess(AE2, ["--epochs", "2", "--train-subset", "500", "--quiet",
                                                "--out", folder], capsys)
    assert_one_line_error(code, err, "became nan in epoch 1")
    assert digest(folder) == before


def test_checkpoint_problems(good_results, tiny_runs, capsys, tmp_path):
    folder, before = good_results
    code, err = run_inprocess(VAE2, ["--plots-only", "--out", tmp_path / "empty"], capsys)
    assert_one_line_error(code, err, "no checkpoint at")
    code, err = run_inprocess(VAE2, ["--plots-only", "--out", folder], capsys)
    assert_one_line_error(code, err, "holds a AE with a 2-D latent, not this script's VAE")
    code, err = run_inprocess(VAE2, ["--resume", "--out", folder], capsys)
    assert_one_line_error(code, err, "no resume state")
    other = tmp_path / "other"  # same kind, other latent size
    other.mkdir()
    shutil.copy(tiny_runs["ae32"] / "model.pt", other / "model.pt")
    code, err = run_inprocess(AE2, ["--plots-only", "--out", other], capsys)
    assert_one_line_error(code, err, "holds a AE with a 32-D latent, not this script's AE with a 2-D latent")
    save_resume(other, TrainState(epoch=1), {"kind": "ae", "latent_dim": 32})
    code, err = run_inprocess(VAE2, ["--resume", "--out", other], capsys)
    assert_one_line_error(code, err, "holds a AE with a 32-D latent, not this script's model")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.pt").write_bytes(b"not a checkpoint")
    code, err = run_inprocess(AE2, ["--plots-only", "--out", tmp_path / "bad"], capsys)
    assert_one_line_error(code, err, "not a readable checkpoint")
    assert digest(folder) == before


def _start(key, *args):
    return subprocess.Popen([sys.executable, "-u", str(MODELS / SCRIPTS[key]), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)


def _wait_for_epoch(proc):
    for line in proc.stdout:
        if line.startswith("epoch"):
            return line
    raise AssertionError(proc.stderr.read())


def _epochs(lines):
    """Epoch numbers of the "epoch  3/40 ..." lines a run printed."""
    return [int(line.split()[1].split("/")[0]) for line in lines if line.startswith("epoch")]


def test_stop_request_ends_training_after_the_current_batch(monkeypatch):
    """The first Ctrl-C/SIGTERM sets the flag; the batch under way finishes, no further one starts."""
    from latentlab import training
    x = load_mnist().x_train[:2000]
    model = build_model("ae", 2)
    optimizer, scheduler = make_optimizer(model, 1e-3, 1, 16)
    stop, calls = StopFlag(), []
    real = training.batch_loss

    def counting(model, xb, *args):
        calls.append(len(xb))
        if len(calls) == 3:
            stop.requested = True  # as the signal handler would, in the middle of batch 3
        return real(model, xb, *args)

    monkeypatch.setattr(training, "batch_loss", counting)
    assert train_epoch(model, optimizer, scheduler, x, 128, stop) is None
    assert calls == [128, 128, 128]          # 16 batches in the epoch; stopped after the third
    assert scheduler.last_epoch == 3         # and the third was completed (its step taken)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_then_resume(sig, good_results, tmp_path):
    folder, before = good_results
    keys = set(read_metrics(folder))
    proc = _start("ae2", "--epochs", "40", "--train-subset", "6000", "--out", folder)
    first = _wait_for_epoch(proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "--resume" in err, err
    assert digest(folder) == before
    state = resume_path(folder)
    assert state.exists()
    saved_epoch = torch.load(state, weights_only=False)["state"]["epoch"]
    # the saved state is the last epoch the run reported as finished: nothing lost, nothing half-done
    assert saved_epoch == _epochs([first, *out.splitlines()])[-1]
    assert 1 <= saved_epoch < 40

    r = run_script("ae2", "--resume", "--epochs", saved_epoch + 1, "--quiet", "--out", folder)
    assert r.returncode == 0, r.stderr
    assert not state.exists()
    m = read_metrics(folder)
    assert [h["epoch"] for h in m["history"]] == list(range(1, saved_epoch + 2))
    assert set(m) == keys  # the same structure as an uninterrupted run
    assert m["train_subset"] == 6000


def test_process_level_error_has_no_traceback(tmp_path):
    r = run_script("vae32", "--batch-size", "zero", "--out", tmp_path / "r")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
