"""The training loop in-process, on small real-data runs: the schedule, the bookkeeping, the stops."""
import math

import pytest
import torch

from conftest import small_mnist
from latentlab import UserError
from latentlab.models import LatentModel, build_model
from latentlab.training import (Interrupted, StopFlag, TrainState, evaluate, fit, frame_subset,
                                make_optimizer, train_epoch)


@pytest.fixture(scope="module")
def small_data():
    return small_mnist(1024, 300)


def lrs(scheduler, steps):
    """The learning rate of each of the next ``steps`` optimizer steps."""
    out = []
    for _ in range(steps):
        out.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def test_the_learning_rate_warms_up_for_one_epoch_then_follows_a_cosine_to_zero():
    model = build_model("ae", 2)
    opt, sched = make_optimizer(model, lr=0.01, epochs=10, steps_per_epoch=20)
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["fused"]
    assert isinstance(sched, torch.optim.lr_scheduler.LambdaLR)
    seen = lrs(sched, 200)
    assert seen[0] == pytest.approx(0.01 / 20) and seen[19] == pytest.approx(0.01)    # linear warm-up, 20 steps
    assert seen[:20] == sorted(seen[:20]) and seen[20:] == sorted(seen[20:], reverse=True)
    assert seen[20 + 90] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 90 / 180)))  # halfway: half
    assert seen[-1] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 179 / 180)))
    assert lrs(sched, 2) == [0, 0]   # past the end: stays at zero
    _, sched = make_optimizer(model, lr=0.01, epochs=1, steps_per_epoch=30)  # warm-up ≤ a tenth of all steps
    assert sched.get_last_lr()[0] == pytest.approx(0.01 / 3)
    _, sched = make_optimizer(model, lr=0.01, epochs=3, steps_per_epoch=5)   # 15 steps: warm-up of 1 step
    assert sched.get_last_lr()[0] == pytest.approx(0.01)
    _, sched = make_optimizer(model, lr=0.01, epochs=1, steps_per_epoch=1)   # one step: full, then zero
    assert lrs(sched, 2) == pytest.approx([0.01, 0.0], abs=1e-12)


def test_a_step_is_autograd_of_the_objective_then_adam():
    """train_epoch's update is exactly: model.loss → backward → torch.optim.Adam → the scheduler."""
    torch.manual_seed(0)
    x = torch.rand(64, 784)
    ours, theirs = build_model("vae", 2), build_model("vae", 2)
    theirs.load_state_dict(ours.state_dict())
    opt, sched = make_optimizer(ours, 2e-3, 1, 1)
    ref = torch.optim.Adam(theirs.parameters(), lr=2e-3)
    torch.manual_seed(1)
    train_epoch(ours, opt, sched, x, 64, beta=0.5)
    torch.manual_seed(1)                                 # the same order and noise, by hand
    perm = torch.randperm(64)
    loss, _, _ = theirs.loss(x.index_select(0, perm), 0.5)
    loss.backward()
    ref.step()                                           # one step in all: the schedule's factor is 1
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)
    assert not torch.equal(ours.decoder[0].weight, build_model("vae", 2).decoder[0].weight)


def test_the_decoder_starts_at_the_mean_training_image(small_data):
    model = build_model("vae", 2)
    assert model.init_output_bias(small_data.x_train)
    p = small_data.x_train.mean(0).clamp(1e-3, 1 - 1e-3)
    assert torch.allclose(torch.sigmoid(model.decoder[-1].bias), p, atol=1e-5)
    assert float(small_data.x_train.mean(0).min()) == 0 and float(p.min()) == pytest.approx(1e-3)
    conv = build_model("ae", 2, "conv")   # one bias for the one output channel: the mean pixel
    assert conv.init_output_bias(small_data.x_train)
    assert float(torch.sigmoid(conv.decoder[-2].bias.detach())) == pytest.approx(float(small_data.x_train.mean()), rel=1e-5)
    odd = torch.nn.Module()
    odd.decoder = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 784, bias=False))
    assert not LatentModel.init_output_bias(odd, small_data.x_train)   # its last bias has 3 values: left as built
    odd.decoder = torch.nn.Sequential(torch.nn.Linear(2, 784, bias=False))
    assert not LatentModel.init_output_bias(odd, small_data.x_train)


def test_an_epoch_returns_the_mean_bound_over_its_images(small_data):
    torch.manual_seed(0)
    model = build_model("vae", 2)
    opt, sched = make_optimizer(model, 1e-3, 1, 8)
    neg_elbo, rec, kl = train_epoch(model, opt, sched, small_data.x_train, 128, beta=0.5)
    assert neg_elbo == pytest.approx(rec + kl) and kl > 0 and rec > 100   # the true −ELBO whatever β
    assert sched.last_epoch == 8   # one scheduler step a batch
    # a batch that does not divide the images: the means still weigh every image once
    torch.manual_seed(1)
    frozen = build_model("ae", 2)
    opt, sched = make_optimizer(frozen, 2e-3, 1, 8)
    train_epoch(frozen, opt, sched, small_data.x_train, 128)
    x = small_data.x_train[:300]
    opt, sched = make_optimizer(frozen, 0.0, 1, 3)  # lr 0: the model's own loss, whatever the order
    loss, rec, kl = train_epoch(frozen, opt, sched, x, 128)
    assert kl == 0 and loss == rec
    # float32 unless asked: bf16 would be ~7e-5 off here
    assert loss == pytest.approx(evaluate(frozen, x)["loss"], rel=1e-5)
    opt, sched = make_optimizer(frozen, 0.0, 1, 3)
    assert train_epoch(frozen, opt, sched, x, 128, amp=torch.bfloat16)[0] != pytest.approx(loss, rel=1e-5)


def test_beta_weighs_the_kl_of_the_objective_and_defaults_to_one(small_data):
    x = small_data.x_train[:256]
    model = build_model("vae", 2)
    losses = {}
    for beta in (None, 1.0, 0.5):
        torch.manual_seed(0)
        with torch.no_grad():
            losses[beta] = model.loss(x) if beta is None else model.loss(x, beta)
    (default, rec, kl), one, half = losses[None], losses[1.0][0], losses[0.5][0]
    assert float(default) == float(one) == pytest.approx(float(rec + kl))
    assert float(half) == pytest.approx(float(rec + 0.5 * kl))

    def trained(**kw):
        torch.manual_seed(0)
        m = build_model("vae", 2)
        opt, sched = make_optimizer(m, 2e-3, 1, 4)
        train_epoch(m, opt, sched, small_data.x_train[:512], 128, **kw)
        torch.manual_seed(0)
        again = build_model("vae", 2)
        fit(again, small_data, epochs=1, batch_size=256, lr=2e-3, progress="none", **kw)
        return torch.cat([p.flatten() for p in m.parameters()]), torch.cat([p.flatten() for p in again.parameters()])

    default, one, half = trained(), trained(beta=1.0), trained(beta=0.5)
    for i in range(2):   # train_epoch, then fit
        assert torch.equal(default[i], one[i]) and not torch.equal(default[i], half[i])


def test_evaluate_reports_the_deterministic_reconstruction_and_the_codes(small_data):
    torch.manual_seed(0)
    model = build_model("vae", 2).eval()
    x = small_data.x_test
    r = evaluate(model, x, batch_size=128)
    with torch.no_grad():
        mu, logvar = model.posterior(x)
        probs = torch.sigmoid(model.decode(mu))
    assert torch.equal(r["codes"], mu)
    assert r["mse"] == pytest.approx(float((probs - x).pow(2).mean()), rel=1e-5)
    assert r["loss"] == pytest.approx(r["rec"] + r["kl"]) and r["kl"] > 0
    assert r["kl"] == pytest.approx(float(0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()), rel=1e-4)
    # the noise has its own seed: the same numbers twice, other numbers with another seed
    assert evaluate(model, x, seed=3, batch_size=128)["rec"] == evaluate(model, x, seed=3, batch_size=128)["rec"]
    assert evaluate(model, x, seed=4, batch_size=128)["rec"] != r["rec"]
    # batches of any size give the same means (every image weighs once)
    whole = evaluate(model, x, batch_size=1000)
    assert whole["mse"] == pytest.approx(r["mse"], rel=1e-6) and whole["kl"] == pytest.approx(r["kl"], rel=1e-6)
    assert whole["bce"] == pytest.approx(r["bce"], rel=1e-6)


def test_fit_keeps_a_frame_and_a_history_line_per_epoch_and_resumes_exactly(small_data, monkeypatch):
    from latentlab import training
    made = []   # the optimizer fit makes, to read its schedule
    monkeypatch.setattr(training, "make_optimizer", lambda *args: made.append(make_optimizer(*args)) or made[-1])
    torch.manual_seed(0)
    model = build_model("vae", 2)
    index = frame_subset(len(small_data.x_test), size=100)
    assert len(set(index.tolist())) == 100 and int(index.max()) < 300
    lines, snapshots = [], []
    state = fit(model, small_data, epochs=3, batch_size=128, lr=2e-3, frame_index=index, log=lines.append,
                on_epoch=snapshots.append)
    assert state.epoch == 3 and len(state.history) == 3 and len(lines) == 3 and len(snapshots) == 3
    assert len(state.code_frames) == 4 and state.code_frames[0].shape == (100, 2)   # before, and after each epoch
    assert state.code_frames[0].dtype == torch.float16
    assert torch.equal(state.code_frames[-1], evaluate(model, small_data.x_test)["codes"][index].half())
    h = state.history[-1]
    assert set(h) == {"epoch", "train_loss", "train_rec", "train_kl", "test_loss", "test_rec", "test_kl",
                      "test_mse", "seconds"}
    assert h["test_rec"] + h["test_kl"] == pytest.approx(h["test_loss"]) and h["test_kl"] > 0
    assert h["test_loss"] == evaluate(model, small_data.x_test, seed=0)["loss"]   # fit's default seed: 0
    # the schedule counts 8 steps per epoch (1,024 images, batch 128): after epoch 1 of 3, step 8 of 24
    optimizer, scheduler = made[0]
    assert scheduler.last_epoch == 24 and snapshots[0].scheduler["last_epoch"] == 8
    assert snapshots[0].scheduler["_last_lr"][0] == pytest.approx(2e-3 * 0.5 * (1 + math.cos(math.pi * 6 / 22)))
    assert float(snapshots[0].optimizer["state"][0]["step"]) == 8
    assert [e["epoch"] for e in state.history] == [1, 2, 3] and h["test_loss"] < state.history[0]["test_loss"]
    assert h["train_loss"] == pytest.approx(h["train_rec"] + h["train_kl"])
    assert h["test_mse"] == pytest.approx(evaluate(model, small_data.x_test)["mse"], rel=1e-2)
    assert state.train_seconds > 0 and h["seconds"] == round(state.train_seconds, 3)
    assert lines[-1].startswith("epoch   3/3") and "nats" in lines[-1]
    # the snapshot after epoch 2, continued, ends where the uninterrupted run ended
    again = build_model("vae", 2)
    fit(again, small_data, epochs=3, batch_size=128, lr=2e-3, state=snapshots[1], progress="none")
    for a, b in zip(again.parameters(), model.parameters()):
        assert torch.equal(a, b)


def test_a_stop_request_raises_with_the_last_whole_epoch(small_data):
    stop = StopFlag()
    seen = []

    def on_epoch(state):
        seen.append(state.epoch)
        stop.requested = True   # asked during epoch 1's bookkeeping: epoch 2 never starts a batch

    model = build_model("ae", 2)
    with pytest.raises(Interrupted) as e:
        fit(model, small_data, epochs=5, batch_size=128, lr=1e-3, stop=stop, progress="none", on_epoch=on_epoch)
    assert seen == [1] and e.value.snapshot.epoch == 1 and isinstance(e.value.snapshot, TrainState)


def test_a_stop_requested_before_the_first_batch_ends_it_with_the_untrained_state(small_data):
    stop = StopFlag()
    stop.requested = True
    with pytest.raises(Interrupted) as e:
        fit(build_model("ae", 2), small_data, epochs=2, batch_size=128, lr=1e-3, stop=stop, progress="none")
    assert e.value.snapshot is not None and e.value.snapshot.epoch == 0 and e.value.snapshot.history == []


def test_progress_bar_lines_or_silence(small_data, capsys, monkeypatch):
    from tqdm import tqdm

    from latentlab import training
    counts = []

    class Counted(tqdm):
        def close(self):
            counts.append((self.n, self.total, self.leave))
            super().close()

    monkeypatch.setattr(training, "tqdm", Counted)
    lines = []
    fit(build_model("ae", 2), small_data, epochs=1, batch_size=128, lr=1e-3, progress="none", log=lines.append)
    assert lines == [] and capsys.readouterr().out == ""
    fit(build_model("ae", 2), small_data, epochs=1, batch_size=128, lr=1e-3, progress="bar", log=lines.append)
    out = capsys.readouterr().out
    assert "epoch 1/1" in out and len(lines) == 1    # a bar through all 8 batches, gone when done, and a line
    assert counts[0] == (8, 8, False)
    fit(build_model("ae", 2), small_data, epochs=1, batch_size=128, lr=1e-3, log=lines.append)
    assert len(lines) == 2 and capsys.readouterr().out == ""           # default: lines, no bar


def test_bf16_training_monitors_in_bf16_from_its_first_frame(small_data):
    def run(amp):
        torch.manual_seed(0)
        model = build_model("vae", 2)
        state = fit(model, small_data, epochs=1, batch_size=256, lr=2e-3, seed=5, progress="none", amp=amp,
                    frame_index=torch.arange(50))
        return model, state
    model, state = run(torch.bfloat16)
    assert state.history[0]["test_loss"] == evaluate(model, small_data.x_test, seed=5, amp=torch.bfloat16)["loss"]
    _, fp32 = run(None)
    assert state.history[0]["train_loss"] != fp32.history[0]["train_loss"]
    assert not torch.equal(state.code_frames[0], fp32.code_frames[0])   # the initial codes too


def test_a_non_finite_loss_stops_with_a_clear_error(small_data):
    model = build_model("ae", 2)
    with pytest.raises(UserError, match="try a smaller --lr"):
        fit(model, small_data, epochs=2, batch_size=128, lr=1e6, progress="none")


def test_the_animated_test_digits_are_fixed_whatever_the_global_seed():
    """posterior_evolution.gif follows 3,000 fixed test digits, drawn from their own generator (seed 0),
    so no other randomness moves them: every run of the script animates the same digits."""
    torch.manual_seed(123)
    first = frame_subset(10_000)
    torch.manual_seed(7)
    torch.rand(5)
    assert torch.equal(frame_subset(10_000), first) and len(set(first.tolist())) == 3000
    assert torch.equal(first, torch.randperm(10_000, generator=torch.Generator().manual_seed(0))[:3000])
    assert torch.equal(frame_subset(500), torch.randperm(500, generator=torch.Generator().manual_seed(0))[:500])


def test_training_seconds_add_up_over_epochs_and_resumes(small_data, monkeypatch):
    """With a clock that ticks one second per reading, each epoch takes exactly one second."""
    import itertools

    from latentlab import training
    ticks = itertools.count()
    monkeypatch.setattr(training.time, "perf_counter", lambda: float(next(ticks)))
    snapshots = []
    state = fit(build_model("ae", 2), small_data, epochs=3, batch_size=512, lr=1e-3, progress="none",
                on_epoch=snapshots.append)
    assert [h["seconds"] for h in state.history] == [1.0, 2.0, 3.0] and state.train_seconds == 3.0
    more = fit(build_model("ae", 2), small_data, epochs=4, batch_size=512, lr=1e-3, progress="none",
               state=snapshots[-1])
    assert more.history[-1]["seconds"] == 4.0


def test_the_kl_warmup_rises_linearly_from_zero_then_holds():
    from latentlab.training import kl_warmup
    at = kl_warmup(0.5, 4)
    assert [at(s) for s in range(6)] == [0.125, 0.25, 0.375, 0.5, 0.5, 0.5]
    assert kl_warmup(2.0, 0)(0) == 2.0


def test_a_warmup_trains_each_step_with_the_scheduled_beta():
    """fit(beta=0.5, beta_warmup=1) on 4 batches an epoch: β is 1/8, 2/8, 3/8, 4/8 of 1 over the first epoch's
    steps, then 0.5; a resumed run would continue from the scheduler's step count, which drives it."""
    torch.manual_seed(0)
    model, seen = build_model("vae", 2), []
    real = model.loss

    def recording(xb, beta=1.0, generator=None, y=None):
        if generator is None:   # training's calls; evaluation draws its noise from its own generator
            seen.append(beta)
        return real(xb, beta, generator, y)

    model.loss = recording
    fit(model, small_mnist(512, 100), epochs=2, batch_size=128, lr=1e-3, progress="none", beta=0.5, beta_warmup=1)
    assert seen == pytest.approx([0.125, 0.25, 0.375, 0.5, 0.5, 0.5, 0.5, 0.5])
