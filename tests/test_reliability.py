"""Bad input ends in one clear line and exit code 2; failed or interrupted runs keep the last good results."""
import errno
import hashlib
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from conftest import MODELS, REPO, SCORED, SCRIPTS, SPECS, TINY, read_metrics, run_script, without_timings
from latentlab import cli
from latentlab.checkpoints import resume_path, save_resume
from latentlab.data import DEFAULT_DATA_ROOT, RELEASE_MD5, SPLITS, load_mnist, prepare_raw
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
    (["--test-subset", "0"], "--test-subset: '0' must be a positive"),
    (["--test-subset", "20000"], "larger than the 10000 test images"),
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
    from latentlab.models import AutoEncoder
    real = AutoEncoder.loss

    def poisoned(model, x, *args, **kw):   # what a diverged step reports
        loss, rec, kl = real(model, x, *args, **kw)
        return loss, rec * float("nan"), kl

    monkeypatch.setattr(AutoEncoder, "loss", poisoned)
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
    assert_one_line_error(code, err, "holds the AE (mlp) with a 2-D latent, not this run's VAE")
    code, err = run_inprocess(VAE2, ["--resume", "--out", folder], capsys)
    assert_one_line_error(code, err, "no resume state")
    other = tmp_path / "other"  # same kind, other latent size
    other.mkdir()
    shutil.copy(tiny_runs["ae32"] / "model.pt", other / "model.pt")
    code, err = run_inprocess(AE2, ["--plots-only", "--out", other], capsys)
    assert_one_line_error(code, err, "holds the AE (mlp) with a 32-D latent, not this run's AE (mlp) with a 2-D latent")
    code, err = run_inprocess(AE2, ["--plots-only", "--arch", "conv", "--out", folder], capsys)
    assert_one_line_error(code, err, "holds the AE (mlp) with a 2-D latent, not this run's AE (conv)")
    save_resume(other, TrainState(epoch=1), {"kind": "ae", "latent_dim": 32, "hidden": [512, 256]})
    code, err = run_inprocess(VAE2, ["--resume", "--out", other], capsys)
    assert_one_line_error(code, err, "holds the AE (mlp) with a 32-D latent, not this run's VAE (mlp) with a 2-D")
    old = tmp_path / "old"   # a model.pt of the packed layout this repo wrote before plain state_dicts
    old.mkdir()
    torch.save({"config": {"kind": "ae", "latent_dim": 2, "hidden": [512, 256]}, "weights": {}}, old / "model.pt")
    code, err = run_inprocess(AE2, ["--plots-only", "--out", old], capsys)
    assert_one_line_error(code, err, "written by an older version of this repo; run the script again")
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
    from latentlab.models import AutoEncoder
    x = load_mnist().x_train[:2000]
    model = build_model("ae", 2)
    optimizer, scheduler = make_optimizer(model, 1e-3, 1, 16)
    stop, calls = StopFlag(), []
    real = AutoEncoder.loss

    def counting(model, xb, *args, **kw):
        calls.append(len(xb))
        if len(calls) == 3:
            stop.requested = True  # as the signal handler would, in the middle of batch 3
        return real(model, xb, *args, **kw)

    monkeypatch.setattr(AutoEncoder, "loss", counting)
    assert train_epoch(model, optimizer, scheduler, x, 128, stop) is None
    assert calls == [128, 128, 128]          # 16 batches in the epoch; stopped after the third
    assert scheduler.last_epoch == 3 and float(optimizer.state[next(model.parameters())]["step"]) == 3


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_then_resume(sig, good_results, tmp_path):
    folder, before = good_results
    keys = set(read_metrics(folder))
    proc = _start("ae2", "--epochs", "40", "--train-subset", "6000", *SCORED, "--out", folder)
    first = _wait_for_epoch(proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=900)
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


@pytest.mark.slow
def test_process_level_error_has_no_traceback(tmp_path):
    r = run_script("vae32", "--batch-size", "zero", "--out", tmp_path / "r")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


# --------------------------------------------------------------------------- one writer, verified data, crashes

@pytest.mark.slow
def test_two_runs_into_one_folder_one_writer(tmp_path):
    out = tmp_path / "r"
    first = _start("ae2", "--epochs", "3", "--train-subset", "6000", *SCORED, "--out", out)
    _wait_for_epoch(first)  # it is training, so it holds the folder
    second = run_script("ae2", *TINY, "--out", out, timeout=120)
    assert second.returncode == 2 and second.stdout == ""
    assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
    assert f"{out} is being written by another run (process {first.pid})" in second.stderr
    first.communicate(timeout=900)
    assert first.returncode == 0
    m = read_metrics(out)
    assert (m["epochs"], m["train_subset"]) == (3, 6000)  # the first run's results, complete
    assert {"model.pt", "page_data.js", "sampling_1.gif", "sampling_2.gif"} <= {p.name for p in out.iterdir()}


@pytest.fixture
def corrupted_copy(tmp_path):
    """A copy of the MNIST files with 5,000 bytes in the middle of the training images overwritten."""
    raw = tmp_path / "copy" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in RELEASE_MD5:
        shutil.copy(prepare_raw(DEFAULT_DATA_ROOT) / name, raw / name)
    images = raw / "train-images-idx3-ubyte"
    data = bytearray(images.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 5000] = bytes(range(256)) * 19 + bytes(136)
    images.write_bytes(bytes(data))
    return tmp_path / "copy"


def test_corrupted_bundled_data_stops_the_run(corrupted_copy, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("latentlab.data.DEFAULT_DATA_ROOT", corrupted_copy)
    code, err = run_inprocess(AE2, ["--out", tmp_path / "r"], capsys)
    assert_one_line_error(code, err, "train-images-idx3-ubyte differs from the MNIST release")
    assert "git checkout data/" in err and not (tmp_path / "r").exists()


@pytest.mark.slow  # a whole run: training, then every metric
def test_corrupted_user_data_warns_once_and_is_recorded(corrupted_copy, capsys, tmp_path):
    cli.main(AE2, argv=["--data-root", str(corrupted_copy), "--epochs", "1", "--train-subset", "500", *SCORED,
                        "--lean", "--quiet", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and "differs from the MNIST release" in err[0]
    recorded = read_metrics(tmp_path / "r")["data_md5"]
    assert recorded["train-images-idx3-ubyte"] != RELEASE_MD5["train-images-idx3-ubyte"]
    assert recorded["t10k-images-idx3-ubyte"] == RELEASE_MD5["t10k-images-idx3-ubyte"]


def test_files_are_hashed_again_only_when_they_change(corrupted_copy, monkeypatch):
    from latentlab import data
    raw = corrupted_copy / "MNIST" / "raw"
    calls = []
    real = data.file_md5
    monkeypatch.setattr(data, "file_md5", lambda path: calls.append(path.name) or real(path))
    first = data.checksums(raw)
    assert len(calls) == 4
    assert data.checksums(raw) == first and len(calls) == 4  # unchanged: read from .md5.json
    labels = raw / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes())  # same bytes, new mtime
    assert data.checksums(raw) == first and calls[4:] == ["t10k-labels-idx1-ubyte"]


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    out, full = tmp_path / "killed", tmp_path / "full"
    args = ["--epochs", "6", "--train-subset", "3000", *SCORED, "--lean"]
    proc = _start("vae2", *args, "--out", out)
    for _ in range(3):  # after the third epoch line, at least two epochs' states were saved
        _wait_for_epoch(proc)
    proc.kill()
    proc.wait(timeout=60)
    saved = torch.load(resume_path(out), weights_only=False)["state"]["epoch"]
    assert 2 <= saved < 6 and not out.exists()
    assert list(tmp_path.glob(f".killed.staging-{proc.pid}"))  # what the dead run left behind
    r = run_script("vae2", "--resume", "--epochs", 6, "--lean", "--quiet", "--out", out)
    assert r.returncode == 0, r.stderr
    assert not resume_path(out).exists() and not list(tmp_path.glob(".killed.staging-*"))
    r = run_script("vae2", *args, "--quiet", "--out", full)
    assert r.returncode == 0, r.stderr
    assert without_timings(read_metrics(out)) == without_timings(read_metrics(full))


def _half_swapped(tiny_runs, tmp_path, complete):
    """The state a run killed between the two renames of its swap leaves: no results folder, the old
    one renamed aside, the new one in its staging folder."""
    out = tmp_path / "r"
    shutil.copytree(tiny_runs["ae2"], tmp_path / ".r.old-999999")
    shutil.copytree(tiny_runs["ae2"], tmp_path / ".r.staging-999999")
    (tmp_path / ".r.staging-999999" / "marker").write_text("new")
    if not complete:
        (tmp_path / ".r.staging-999999" / "metrics.json").unlink()
    return out


@pytest.mark.parametrize("complete", [True, False])
def test_a_swap_cut_in_half_is_finished_or_undone(tiny_runs, tmp_path, complete):
    from latentlab.folder_swap import recover
    out = _half_swapped(tiny_runs, tmp_path, complete)
    recover(out)
    assert (out / "metrics.json").exists() and (out / "model.pt").exists()
    assert (out / "marker").exists() == complete  # the new results when whole, else the old ones
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


@pytest.mark.slow
def test_the_next_run_starts_with_a_whole_results_folder(tiny_runs, tmp_path):
    out = _half_swapped(tiny_runs, tmp_path, complete=True)
    r = run_script("ae2", "--plots-only", *SCORED, "--quiet", "--out", out)  # needs model.pt in the folder
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.lock", "r"]


def test_a_full_disk_keeps_the_last_good_results(good_results, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "page_data.js")

    monkeypatch.setattr("latentlab.page_export.write", full)
    folder, before = good_results
    code, err = run_inprocess(AE2, ["--epochs", "1", "--train-subset", "500", "--quiet", "--out", folder], capsys)
    assert_one_line_error(code, err, "cannot write the results (No space left on device: page_data.js)")
    assert "continue with --resume" in err and resume_path(folder).exists()
    assert digest(folder) == before


def test_a_full_disk_while_saving_the_resume_state(good_results, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cli, "save_resume", full)
    folder, before = good_results
    code, err = run_inprocess(AE2, ["--epochs", "2", "--train-subset", "500", "--quiet", "--out", folder], capsys)
    assert_one_line_error(code, err, "cannot write the resume state")
    assert digest(folder) == before


def test_a_resume_state_of_an_older_version_is_refused_in_one_line(good_results, capsys):
    """States saved before the format number, e.g. with the flat parameter's own Adam state."""
    folder, before = good_results
    model = build_model("ae", 2)
    old = {**TrainState(epoch=1, model=model.state_dict(), optimizer={"steps": 8}).__dict__}
    torch.save({"config": {"kind": "ae", "latent_dim": 2}, "state": old}, resume_path(folder))
    code, err = run_inprocess(AE2, ["--resume", "--epochs", "2", "--quiet", "--out", folder], capsys)
    assert_one_line_error(code, err, "was saved by an older version of this repo; run without --resume")
    assert digest(folder) == before


@pytest.fixture
def small_disk(tmp_path):
    """A real filesystem of a few MiB (tmpfs, mounted as root), unmounted afterwards."""
    mounted = []

    def mount(mib):
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(where)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or 'not root'}); the injected errors above stand in")
        mounted.append(where)
        return where
    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def leftovers(disk):
    """Temporary files and staging folders left on ``disk``."""
    return sorted(p.name for p in disk.rglob("*") if p.name.endswith(".tmp") or ".staging-" in p.name)


@pytest.mark.slow
def test_a_really_full_disk_while_writing_the_results(small_disk):
    """1 MiB: the conv AE's resume state (0.6 MB) fits, its results folder does not."""
    disk = small_disk(1)
    out = disk / "results"
    out.mkdir()
    (out / "metrics.json").write_text('{"last": "good"}')
    r = run_script("ae2", "--arch", "conv", "--epochs", "1", "--train-subset", "500", *SCORED, "--quiet", "--out", out)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "cannot write the results (No space left on device" in r.stderr and "continue with --resume" in r.stderr
    assert (out / "metrics.json").read_text() == '{"last": "good"}' and [p.name for p in out.iterdir()] == ["metrics.json"]
    assert leftovers(disk) == [] and resume_path(out).exists()
    torch.load(resume_path(out), weights_only=True)   # whole


@pytest.mark.slow
def test_a_really_full_disk_while_saving_the_resume_state(small_disk):
    """3 MiB: the MLP's resume state (weights and Adam's two moments, ~13 MB) does not fit."""
    disk = small_disk(3)
    out = disk / "results"
    r = run_script("ae2", "--epochs", "2", "--train-subset", "500", *SCORED, "--quiet", "--out", out)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "cannot write the resume state" in r.stderr and "No space left on device" in r.stderr
    assert leftovers(disk) == [] and not resume_path(out).exists() and not out.exists()


# --------------------------------------------------------------------------- --precision auto

def test_auto_precision_is_bf16_only_where_the_hardware_runs_it(monkeypatch):
    """bf16 on a CUDA GPU that runs it natively (not a T4 or V100, which emulate it), on a CPU with
    AVX512-BF16 or AMX; fp32 everywhere else. fp32 and bf16 asked for are what they say."""
    asked = []

    def cuda_bf16(including_emulation=True):
        asked.append(including_emulation)
        return gpu_native

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", cuda_bf16)
    cuda = torch.device("cuda")
    for gpu_native, expected in ((True, torch.bfloat16), (False, None)):   # an A100; a T4 or V100
        assert cli.pick_precision("auto", cuda) is expected
    assert asked == [False, False]
    cpu = torch.device("cpu")
    for avx512_bf16, amx, expected in ((True, False, torch.bfloat16), (False, True, torch.bfloat16),
                                       (False, False, None)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        assert cli.pick_precision("auto", cpu) is expected, (avx512_bf16, amx)
        assert cli.pick_precision("fp32", cpu) is None and cli.pick_precision("bf16", cpu) is torch.bfloat16
    assert cli.pick_precision("auto", torch.device("mps")) is None
