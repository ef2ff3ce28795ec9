"""The sweep runner on tiny real sweeps (a data subset, two epochs): --jobs 2, resuming, the summary's
numbers, --print-commands that reproduce a run, and compare_models over the result."""
import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import MODELS, REPO, assert_refused_as_subset, compare_models, read_metrics, without_timings

pytestmark = pytest.mark.slow  # every test here runs a sweep or reads one

TINY = ["--models", "vae2", "--seeds", "0,1", "--betas", "0.1,4", "--script-args", "--epochs 2 --train-subset 20000 --test-subset 500"]


def sweep(root, name, *args, settings=TINY):
    return subprocess.run([sys.executable, str(MODELS / "sweep.py"), name, *settings, "--dir", str(root), *args],
                          capture_output=True, text=True, timeout=600, cwd=REPO)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny sweep run with --jobs 2: the 2-D VAE at 2 values of β × 2 seeds."""
    root = tmp_path_factory.mktemp("sweeps")
    r = sweep(root, "tiny", "--jobs", "2")
    assert r.returncode == 0, r.stderr
    return root / "tiny", r.stdout


def test_jobs_2_runs_everything_once_with_progress(finished):
    folder, out = finished
    runs = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name != "logs")
    assert runs == ["vae2_b0.1_s0", "vae2_b0.1_s1", "vae2_b4_s0", "vae2_b4_s1"]
    assert "4 to run (2 at once, 1 threads each" in out
    logs = sorted((folder / "logs").glob("*_log.out"))  # one submitit job, and log, a run
    assert len(logs) == 4 and all("results in" in p.read_text() for p in logs)
    assert "[4/4]" in out and "left ~" in out
    for run in runs:
        m = read_metrics(folder / run)
        assert m["threads"] == 1 and m["epochs"] == 2 and m["train_subset"] == 20000
        assert sorted(p.name for p in (folder / run).iterdir()) == ["metrics.json", "test_codes.npy"]
    assert read_metrics(folder / "vae2_b4_s1")["beta"] == 4.0 and read_metrics(folder / "vae2_b4_s1")["seed"] == 1


def test_summary_equals_the_runs_metrics(finished):
    folder, _ = finished
    summary = json.loads((folder / "summary.json").read_text())
    assert [(g["model"], g["beta"], g["n"]) for g in summary["groups"]] == [("vae2", 0.1, 2), ("vae2", 4.0, 2)]
    for g in summary["groups"]:
        per_run = [read_metrics(folder / name) for name in g["runs"]]
        for key in ("test_mse", "knn_accuracy", "fid_mnist", "test_kl", "test_nll_iwae"):
            values = [m[key] for m in per_run]
            assert g["metrics"][key]["values"] == values
            assert g["metrics"][key]["mean"] == pytest.approx(np.mean(values), rel=1e-12)
            assert g["metrics"][key]["sd"] == pytest.approx(np.std(values, ddof=1), rel=1e-9)
    kl = {g["beta"]: g["metrics"]["test_kl"]["mean"] for g in summary["groups"] if g["beta"]}
    assert kl[0.1] > kl[4.0]  # a heavier KL weight buys a smaller KL, even after two short epochs
    assert {"rate_distortion.png", "latent_by_beta.png"} <= {p.name for p in folder.iterdir()}


def test_a_finished_sweep_trains_nothing(finished):
    folder, _ = finished
    stamps = {p: p.stat().st_mtime_ns for p in folder.glob("*/metrics.json")}
    r = sweep(folder.parent, "tiny")
    assert r.returncode == 0, r.stderr
    assert "4 already done, 0 to run" in r.stdout and "[1/" not in r.stdout
    assert {p: p.stat().st_mtime_ns for p in folder.glob("*/metrics.json")} == stamps


def test_other_settings_in_the_same_folder_are_refused(finished):
    folder, _ = finished
    r = sweep(folder.parent, "tiny", settings=["--models", "ae2"])
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "other settings" in r.stderr


def test_a_run_done_in_another_sweep_is_copied_not_trained(finished, tmp_path):
    folder, _ = finished
    shutil.copytree(folder, tmp_path / "tiny")
    r = sweep(tmp_path, "other", "--jobs", "2", settings=[*TINY[:2], "--seeds", "1", "--betas", "4", *TINY[-2:]])
    assert r.returncode == 0, r.stderr
    assert "vae2_b4_s1: the same run is done in" in r.stdout and "0 to run" in r.stdout
    assert read_metrics(tmp_path / "other" / "vae2_b4_s1") == read_metrics(folder / "vae2_b4_s1")


def test_printed_commands_reproduce_a_run(finished, tmp_path):
    folder, _ = finished
    copy = tmp_path / "sweeps"
    shutil.copytree(folder, copy / "tiny")
    shutil.rmtree(copy / "tiny" / "vae2_b4_s1")
    r = sweep(copy, "tiny", "--jobs", "2", "--print-commands")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python ")
    assert "--beta 4" in lines[0] and "--seed 1" in lines[0]
    pasted = subprocess.run(lines[0], shell=True, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert pasted.returncode == 0, pasted.stderr
    again, original = read_metrics(copy / "tiny" / "vae2_b4_s1"), read_metrics(folder / "vae2_b4_s1")
    assert without_timings(again) == without_timings(original)


def test_an_interrupted_sweep_resumes(tmp_path):
    args = ["--models", "vae32", "--seeds", "0,1", "--betas", "1", "--script-args",
            "--epochs 3 --train-subset 20000 --test-subset 500"]
    cmd = [sys.executable, str(MODELS / "sweep.py"), "halt", *args, "--dir", str(tmp_path)]
    # as from a terminal: a shell that started us in the background may have left SIGINT ignored
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (tmp_path / "halt" / "vae32_b1_s0.resume.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # the first run has finished its first epoch and trains the second
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command again" in err and err.count("\n") == 1
    assert not (tmp_path / "halt" / "vae32_b1_s1").exists()
    assert (tmp_path / "halt" / "vae32_b1_s0.resume.pt").exists()  # the interrupted run kept its state
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "2 runs, 0 already done, 2 to run" in r.stdout
    assert not (tmp_path / "halt" / "vae32_b1_s0.resume.pt").exists()
    summary = json.loads((tmp_path / "halt" / "summary.json").read_text())
    assert summary["groups"][0]["n"] == 2
    for run in ("vae32_b1_s0", "vae32_b1_s1"):
        assert [h["epoch"] for h in read_metrics(tmp_path / "halt" / run)["history"]] == [1, 2, 3]


def test_compare_models_reads_the_seeds_sweep(finished, tmp_path):
    from compare_models import END, START
    from latentlab.sweep_reports import cell
    folder, _ = finished
    shutil.copytree(folder, tmp_path / "sweeps" / "seeds")
    readme = f"a\n{START}\nold\n{END}\nb\n"
    # the tiny sweep scored 500 test digits a run: the README's table refuses it ...
    assert_refused_as_subset(compare_models(tmp_path, readme), tmp_path, readme)
    # ... and takes the same summary as a full-test-set sweep records it
    summary_path = tmp_path / "sweeps" / "seeds" / "summary.json"
    full = json.loads(summary_path.read_text())
    for g in full["groups"]:
        g["setup"]["test_subset"] = None
    summary_path.write_text(json.dumps(full))
    r = compare_models(tmp_path, readme)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "README.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    summary = json.loads((folder / "summary.json").read_text())
    mse = summary["groups"][0]["metrics"]["test_mse"]
    assert rows[1].startswith("| VAE 2-D | ") and f"| {cell(mse, '{:.4f}')} |" in rows[1] and " ± " in rows[1]
    assert "Mean ± sd over the n = 2 seeds (0, 1)" in text
    assert (tmp_path / "comparison.png").stat().st_size > 10_000
