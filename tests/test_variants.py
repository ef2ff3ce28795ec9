"""Sweeps with variants (sweep_jobs.PRESETS' "variants", sweep.py --variant): each named set of flags is a
group of runs of its own, a run done in another sweep with the same command line is copied, and the table
compares each variant with the first, refusing to subtract log-densities of different likelihoods."""
import json

import pytest

from latentlab import UserError
from latentlab.sweep_jobs import definition, plan, records, summarize, twin
from latentlab.sweep_reports import variant_table

VARIANTS = {"bernoulli": [], "continuous-bernoulli": ["--likelihood", "continuous-bernoulli"]}


def finish_fake(runs, values, spread=None):
    """Write a metrics.json for each run, as a finished run would: each metric its variant's value, plus its
    ``spread`` times the seed."""
    for r in runs:
        r.out.mkdir(parents=True)
        m = {"seed": r.seed, "beta": 1.0, "threads": 1, "arch": "mlp", "latent_dim": 2, "epochs": 30,
             "likelihood": "continuous-bernoulli" if r.variant != "bernoulli" else "bernoulli",
             **{k: v[r.variant] + spread[k] * r.seed for k, v in values.items()}}
        (r.out / "metrics.json").write_text(json.dumps(m))


def test_each_variant_is_a_group_and_the_table_compares_it_with_the_first(tmp_path):
    d = definition("cb", models=["vae2"], seeds=[0, 1], variants=VARIANTS)
    folder, runs = plan("cb", d, tmp_path)
    assert [r.name for r in runs] == ["vae2_bernoulli_s0", "vae2_bernoulli_s1",
                                      "vae2_continuous-bernoulli_s0", "vae2_continuous-bernoulli_s1"]
    assert runs[2].args == ("--likelihood", "continuous-bernoulli") and "--likelihood" in runs[2].argv()
    finish_fake(runs, {"test_neg_elbo": {"bernoulli": 138.0, "continuous-bernoulli": -4950.0},
                       "test_mse": {"bernoulli": 0.035, "continuous-bernoulli": 0.05},
                       "knn_accuracy": {"bernoulli": 0.80, "continuous-bernoulli": 0.801}},
                {"test_neg_elbo": 1.0, "test_mse": 0.0002, "knn_accuracy": 0.01})
    summary = summarize(records(runs), "cb", d)
    assert [(g["variant"], g["n"]) for g in summary["groups"]] == [("bernoulli", 2), ("continuous-bernoulli", 2)]
    rows = {line.split(" | ")[1]: line for line in variant_table(summary).splitlines()[2:]}
    assert rows["−ELBO (nats)"].endswith("| not comparable |")       # densities on different spaces
    assert rows["MSE test"].endswith("| +0.0150 |")
    assert rows["kNN acc."].endswith("| within noise |")             # 0.001 apart, sd 0.007 each


def test_a_run_with_the_same_command_line_in_another_sweep_is_its_twin(tmp_path):
    d = definition("w", models=["vae2"], seeds=[0], variants={"no-warmup": [], "w": ["--beta-warmup", "3"]})
    folder, other = plan("w", d, tmp_path)
    finish_fake(other[:1], {})
    (folder / "sweep.json").write_text(json.dumps(d))
    _, runs = plan("cb", definition("cb", models=["vae2"], seeds=[0], variants=VARIANTS), tmp_path)
    assert twin(runs[0], 1) == other[0].out        # no flags either side: the very same run
    assert twin(runs[1], 1) is None                # --likelihood continuous-bernoulli was run nowhere


def test_a_variant_name_must_be_a_folder_name():
    with pytest.raises(UserError, match="variant name"):
        definition("x", models=["vae2"], variants={"a/b": []})


def test_a_slurm_job_that_shows_failed_while_it_is_requeued_is_not_over(monkeypatch, tmp_path):
    """submitit requeues a preempted job itself; SLURM may show it FAILED (or forget it) for a while before it
    is PENDING again, so the watcher waits REQUEUE_GRACE_S before it calls a job without a result over, and
    REQUEUE_WAIT_S when submitit's log says the job requeued itself after its last start."""
    import time
    from types import SimpleNamespace

    from latentlab import sweep_jobs
    states = iter(["RUNNING", "FAILED", "PENDING", "FAILED", "FAILED", "FAILED", "FAILED", "FAILED", "FAILED"])
    monkeypatch.setattr(sweep_jobs, "slurm_state", lambda job_id: next(states))
    monkeypatch.setattr(sweep_jobs, "REQUEUE_GRACE_S", 0.3)
    monkeypatch.setattr(sweep_jobs, "REQUEUE_WAIT_S", 0.9)
    log = tmp_path / "7_0_log.err"
    log.write_text("submitit INFO: Starting with JobEnvironment(job_id=7_0)\n")
    job = SimpleNamespace(job_id="7_0", paths=SimpleNamespace(result_pickle=tmp_path / "7_0_result.pkl", stderr=log))
    seen = {}
    assert [sweep_jobs._ended(job, True, True, seen)[0] for _ in range(4)] == [False] * 4  # ..., PENDING, FAILED
    log.write_text(log.read_text() + "submitit INFO: Requeued job 7_0 (3 remaining timeouts)\n")
    time.sleep(0.35)
    assert sweep_jobs._ended(job, True, True, seen) == (False, "FAILED")  # requeued: it waits longer
    time.sleep(0.6)
    assert sweep_jobs._ended(job, True, True, seen) == (True, "FAILED")  # still FAILED after that: over
    log.write_text(log.read_text() + "submitit INFO: Starting with JobEnvironment(job_id=7_0)\n")
    seen.clear()
    sweep_jobs._ended(job, True, True, seen)
    time.sleep(0.35)
    assert sweep_jobs._ended(job, True, True, seen) == (True, "FAILED")  # restarted since: the short grace again
    assert not sweep_jobs.requeued(SimpleNamespace(paths=SimpleNamespace(stderr=tmp_path / "none.err")))
    (tmp_path / "7_0_result.pkl").touch()
    assert sweep_jobs._ended(job, True, False, {})[0]  # a result ends it at once
