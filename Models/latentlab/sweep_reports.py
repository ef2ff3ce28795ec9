"""Tables and pictures over many runs, from a sweep's ``summary.json``: README's metrics table and
comparison.png with the spread over seeds, the β bridge from the VAE to the AE (the
rate–distortion plane, the 2-D codes at each β, active units and kNN accuracy against β), and the
AE and the VAE against the size of their code.
"""
import json
import math

import matplotlib.pyplot as plt
import numpy as np

from .data import load_mnist
from .metrics import TABLE_COLUMNS
from .style import legend_beside, prior_circles, scatter_codes
from .write_results import TEST_CODES

MODEL_COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860"]
DPI = 110


def load(path):
    return json.loads(path.read_text())


def cell(stat, fmt):
    """A table cell: the value (n = 1) or "mean ± sd" (n > 1) in the column's format, with more
    decimals where the sd would otherwise round to zero (its first significant digit is shown)."""
    if stat is None:
        return "—"
    mean, sd = stat["mean"], stat["sd"]
    if sd is None:
        return fmt.format(int(mean) if "d" in fmt else mean)
    decimals = int(fmt[fmt.index(".") + 1]) if "." in fmt else 1  # a mean of counts is not a count
    if 0 < sd < 0.5 * 10 ** -decimals:
        decimals = -math.floor(math.log10(sd))
    return f"{mean:.{decimals}f} ± {sd:.{decimals}f}"


def markdown_table(summary):
    """README's table: one row per model, every column of ``TABLE_COLUMNS``."""
    lines = ["| model | " + " | ".join(c[1] for c in TABLE_COLUMNS) + " |", "|---" * (len(TABLE_COLUMNS) + 1) + "|"]
    for g in summary["groups"]:
        cells = [cell(g["metrics"].get(key), fmt) for key, _, fmt, _ in TABLE_COLUMNS]
        lines.append(f"| {g['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


ARCH_ROWS = [  # what the arch table compares: (metrics.json key, name, format)
    ("test_neg_elbo", "−ELBO (nats)", "{:.1f}"), ("test_nll_iwae", "IWAE NLL (nats)", "{:.1f}"),
    ("test_nll_exact", "exact NLL (nats)", "{:.1f}"), ("test_mse", "MSE test", "{:.4f}"),
    ("knn_accuracy", "kNN acc.", "{:.3f}"), ("fid_mnist", "FID-MNIST", "{:.1f}"),
    ("sample_confidence", "sample conf.", "{:.3f}"), ("seconds_per_epoch", "train s / epoch", "{:.1f}"),
]


def _per_epoch(group):
    """The group's training seconds per epoch, as a metric's statistics."""
    values = [s / group["setup"]["epochs"] for s in group["metrics"]["train_seconds"]["values"]]
    return {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
            "values": values}


def difference(a, b, fmt):
    """b − a, or "within noise" where it is no larger than the two spreads added (sd of a + sd of b)."""
    delta = b["mean"] - a["mean"]
    if a["sd"] is not None and b["sd"] is not None and abs(delta) <= a["sd"] + b["sd"]:
        return "within noise"
    return ("+" if delta > 0 else "−") + fmt.format(abs(delta))


VARIANT_ROWS = [("active_units", "active units", "{:.1f}"), *ARCH_ROWS[:4], ("test_kl", "KL (nats)", "{:.1f}"),
                *ARCH_ROWS[4:7]]
# log-densities of x: two groups with different likelihoods score them on different scales (docs/variants.md)
DENSITIES = {"test_neg_elbo", "test_nll_iwae", "test_nll_exact", "test_bce", "test_rec"}
HEADERS = {"mlp": "MLP"}


def versus_table(summary, attr, rows):
    """Model by model, the groups that differ in ``attr`` ("arch", "variant"), the first one of each model
    the reference: mean ± sd over seeds of each row's metric and each other group's difference to it."""
    models = {}
    for g in summary["groups"]:
        models.setdefault(g["model"], {})[g.get(attr)] = g
    lines = []
    for model, by in models.items():
        if len(by) < 2:
            continue
        names = list(by)
        heads = [HEADERS.get(n, n) for n in names]
        if not lines:
            lines = ["| model | metric | " + " | ".join(heads) + " | "
                     + " | ".join(f"{h} − {heads[0]}" for h in heads[1:]) + " |", "|---" * (2 * len(names) + 1) + "|"]
        for key, name, fmt in rows:
            stats = [_per_epoch(by[n]) if key == "seconds_per_epoch" else by[n]["metrics"].get(key) for n in names]
            if any(s is None for s in stats):
                continue
            label = by[names[0]]["label"].split(" (")[0]
            likelihoods = [by[n]["setup"].get("likelihood") or "bernoulli" for n in names]
            diffs = ["not comparable" if key in DENSITIES and lik != likelihoods[0] else difference(stats[0], s, fmt)
                     for s, lik in zip(stats[1:], likelihoods[1:])]
            lines.append(f"| {label} | {name} | " + " | ".join(cell(s, fmt) for s in stats) + " | "
                         + " | ".join(diffs) + " |")
    return "\n".join(lines)


def arch_table(summary):
    """The MLP against the conv pair, model by model: mean ± sd over seeds and their difference."""
    return versus_table(summary, "arch", ARCH_ROWS)


def variant_table(summary):
    """Each variant of a sweep (``sweep_jobs.PRESETS``' "variants") against its first, model by model."""
    return versus_table(summary, "variant", VARIANT_ROWS)


def comparison_figure(summary, path):
    """One small chart per metric: the mean over seeds as a bar, ± sd as an error bar, each seed a dot."""
    groups = summary["groups"]
    cols = [c for c in TABLE_COLUMNS if any(c[0] in g["metrics"] for g in groups)]
    ncols = (len(cols) + 1) // 2
    fig, axes = plt.subplots(2, ncols, figsize=(3.0 * ncols, 5.8))
    rng = np.random.default_rng(0)
    for ax, (key, title, _, better) in zip(axes.ravel(), cols):
        shown = [(i, g) for i, g in enumerate(groups) if key in g["metrics"]]
        for x, (i, g) in enumerate(shown):
            stat = g["metrics"][key]
            ax.bar(x, stat["mean"], color=MODEL_COLORS[i % len(MODEL_COLORS)], alpha=0.55, width=0.7)
            if stat["sd"] is not None:
                ax.errorbar(x, stat["mean"], yerr=stat["sd"], color="k", capsize=4, lw=1.2)
                ax.scatter(x + rng.uniform(-0.18, 0.18, len(stat["values"])), stat["values"], s=9,
                           color="k", zorder=3, linewidths=0)
        ax.set_xticks(range(len(shown)), [g["label"].replace(" ", "\n") for _, g in shown], fontsize=7)
        ax.set_title(title + {"low": " ↓", "high": " ↑"}.get(better, ""), fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes.ravel()[len(cols):]:
        ax.axis("off")
    n = sorted({g["n"] for g in groups})
    spread = f"bar = mean, error bar = ± sd, dots = the {n[0]} seeds" if n[-1] > 1 else "one run each"
    fig.suptitle(f"{', '.join(g['label'] for g in groups)} ({spread}; ↓ lower / ↑ higher is better)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _values(group, key):
    return np.array(group["metrics"][key]["values"]) if key in group["metrics"] else None


def inference_figure(summary, path):
    """The inference gap split in two (metrics.inference_metrics) over the seeds: left, stacked bars of the
    amortization and the approximation gap for each VAE (diagonal q*) and, at 2-D, for each family on the
    study images (their amortization gap is what remains of that set's inference gap); right, the inference
    gap left after K steps of per-image VI from the encoder's q (semi-amortized). Mean ± sd over seeds.
    Returns False when no group has the split."""
    from .inference import FAMILIES, IMAGES, K_STEPS, STEPS, STUDY_IMAGES   # what the runs recorded
    names = {"diagonal": "chéo", "full": "đầy đủ", "flow": "flow"}
    groups = [g for g in summary["groups"] if "approximation_gap" in g["metrics"]]
    if not groups:
        return False
    bars = []   # (label, amortization values, approximation values)
    for g in groups:
        bars.append((f"{g['label']}\n{IMAGES} ảnh\nq* chéo", _values(g, "amortization_gap"), _values(g, "approximation_gap")))
    studied = [g for g in groups if "vi_log_px_study" in g["metrics"]]   # runs of 200 images or more
    for g in studied:
        total = _values(g, "vi_log_px_study") - _values(g, "vi_elbo_k0")
        for family in FAMILIES:
            key = "approximation_gap_diagonal_study" if family == "diagonal" else f"approximation_gap_{family}"
            if _values(g, key) is not None:
                bars.append((f"{g['label']}\n{STUDY_IMAGES} ảnh\nq* {names[family]}", total - _values(g, key), _values(g, key)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [1.6, 1]})
    for x, (label, amortization, approximation) in enumerate(bars):
        for bottom, part, color, name in ((0, amortization, "C0", "khấu hao / amortization"),
                                          (amortization.mean(), approximation, "C3", "xấp xỉ / approximation")):
            left.bar(x, part.mean(), bottom=bottom, color=color, alpha=0.75, width=0.7, label=name if x == 0 else None)
            if len(part) > 1:
                left.errorbar(x, bottom + part.mean(), yerr=part.std(ddof=1), color="k", capsize=3, lw=1)
    left.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=7)
    left.set_ylabel("nats / ảnh")
    left.set_title("Khoảng cách suy diễn = khấu hao + xấp xỉ (Cremer et al., 2018)", fontsize=10)
    left.legend(fontsize=8)
    left.grid(axis="y", alpha=0.3)
    ks = [*K_STEPS, STEPS]
    for g in studied:
        left_gap = np.array([_values(g, "vi_log_px_study") - _values(g, f"vi_elbo_k{k}") for k in ks])  # (K, seeds)
        color = MODEL_COLORS[summary["groups"].index(g) % len(MODEL_COLORS)]
        right.errorbar([max(k, 0.5) for k in ks], left_gap.mean(1), yerr=left_gap.std(1, ddof=1) if left_gap.shape[1] > 1
                       else None, marker="o", color=color, capsize=3, label=g["label"])
    right.set_xscale("log")
    right.set_xticks([max(k, 0.5) for k in ks], ["0", *map(str, ks[1:])])
    right.set_xlabel("K bước Adam từ q của encoder (semi-amortized, Kim et al., 2018)")
    right.set_ylabel("log p(x) − ELBO sau K bước (nats)")
    right.set_title(f"Khoảng cách khấu hao khép lại theo K ({STUDY_IMAGES} ảnh đầu)", fontsize=10)
    right.grid(alpha=0.3)
    if studied:
        right.legend(fontsize=8)
    else:
        right.axis("off")   # no run fitted the 200 images of the study
    n = sorted({g["n"] for g in groups})
    fig.suptitle(f"Trung bình ± độ lệch chuẩn trên {n[0]} seed; log p(x): chính xác ở 2-D, IWAE k = 5000 với q* ở 32-D",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------- the β bridge

def _by_beta(summary, model):
    groups = sorted((g for g in summary["groups"] if g["model"] == model and g["beta"] is not None),
                    key=lambda g: g["beta"])
    return groups, np.array([g["beta"] for g in groups])


def _stat(groups, key):
    return (np.array([g["metrics"][key]["mean"] for g in groups]),
            np.array([g["metrics"][key]["sd"] or 0.0 for g in groups]))


def rate_distortion(summary, reference, path):
    """Alemi et al. (2018), "Fixing a Broken ELBO": rate R = KL(q(z|x) ‖ p(z)), distortion
    D = E_q[−log p(x|z)], both in nats; −ELBO = D + R is constant along the dashed diagonals. The
    AE (β → 0, zero noise) reaches the distortion of its solid line."""
    models = [m for m in ("vae2", "vae32") if _by_beta(summary, m)[0]]
    fig, axes = plt.subplots(1, len(models), figsize=(5.6 * len(models), 4.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        groups, betas = _by_beta(summary, model)
        (r, r_sd), (d, d_sd) = _stat(groups, "test_kl"), _stat(groups, "test_rec")
        ax.plot(r, d, "-", color="0.6", lw=1, zorder=1)
        ax.errorbar(r, d, xerr=r_sd, yerr=d_sd, fmt="o", color="#C44E52", ms=5, capsize=3, zorder=2)
        for b, x, y in zip(betas, r, d):
            ax.annotate(f"β={b:g}", (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
        lo, hi = (d + r).min(), (d + r).max()
        xmax = r.max() * 1.15 + 1
        ae = reference.get(model.replace("vae", "ae")) if reference else None
        ylo = min(d.min(), ae["mean"] if ae else d.min()) - 5
        for elbo in np.linspace(lo, hi, 5):
            ax.plot([0, xmax], [elbo, elbo - xmax], ls="--", lw=0.7, color="0.75", zorder=0)
            x = min(xmax * 0.97, elbo - ylo - 1)  # label each diagonal where it leaves the plot
            ax.text(x, elbo - x, f"{elbo:.0f}", fontsize=6.5, color="0.5", ha="right", va="bottom")
        if ae is not None:
            ax.axhline(ae["mean"], color="#4C72B0", lw=1.2)
            ax.text(xmax * 0.01, ae["mean"], f" AE (β → 0): D = {ae['mean']:.1f}", color="#4C72B0",
                    ha="left", va="top", fontsize=8)
        ax.set_xlim(0, xmax)
        ax.set_ylim(ylo, d.max() + 0.15 * (d.max() - d.min()) + 5)
        ax.set_xlabel("rate R = KL (nats/ảnh)")
        ax.set_ylabel("distortion D = −E log p(x|z) (nats/ảnh)")
        ax.set_title(f"{groups[0]['label']}: mean ± sd over {groups[0]['n']} seeds; dashed: equal −ELBO (nats)",
                     fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def latent_by_beta(summary, folder, labels, path, reference_codes=None):
    """The 2-D VAE's test codes (seed 0) at every β on the same axes, with the prior's σ circles;
    the AE-2D's codes, on their own axes, close the row."""
    groups, betas = _by_beta(summary, "vae2")
    codes = [np.load(folder / g["runs"][0] / TEST_CODES).astype(np.float32) for g in groups]
    lim = max(float(np.percentile(np.abs(c), 99.5)) for c in codes) * 1.05
    panels = len(codes) + (reference_codes is not None)
    ncols = (panels + 1) // 2
    fig, axes = plt.subplots(2, ncols, figsize=(3.1 * ncols, 6.4), squeeze=False)
    for ax, beta, c in zip(axes.ravel(), betas, codes):
        scatter_codes(ax, c, labels[:len(c)], size=1.2, alpha=0.5)  # a run's codes: its first test digits
        prior_circles(ax, lw=0.6)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(f"VAE β = {beta:g}", fontsize=9)
        ax.tick_params(labelsize=6)
    if reference_codes is not None:
        ax = axes.ravel()[len(codes)]
        scatter_codes(ax, reference_codes, labels[:len(reference_codes)], size=1.2, alpha=0.5)
        lo, hi = np.percentile(reference_codes, [1, 99], axis=0)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_title("AE (β → 0), trục riêng / own axes", fontsize=9)
        ax.tick_params(labelsize=6)
        legend_beside(ax, markerscale=6)
    for ax in axes.ravel()[panels:]:
        ax.axis("off")
    fig.suptitle("Mã test của VAE 2-D theo β (cùng trục, vòng 1σ/2σ/3σ của prior) / 2-D test codes at each β",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def units_and_knn(summary, reference, path):
    """The 32-D VAE against β: active units and 5-NN accuracy on the codes; the AE-32D's accuracy
    as the β → 0 line."""
    groups, betas = _by_beta(summary, "vae32")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, title in ((axes[0], "active_units", "active units (of 32)"),
                           (axes[1], "knn_accuracy", "kNN accuracy on the codes")):
        mean, sd = _stat(groups, key)
        ax.errorbar(betas, mean, yerr=sd, fmt="o-", color="#C44E52", capsize=3, ms=5)
        for b, g in zip(betas, groups):
            vals = g["metrics"][key]["values"]
            ax.scatter([b] * len(vals), vals, s=8, color="k", zorder=3, linewidths=0)
        ae = (reference or {}).get("ae32") if key == "knn_accuracy" else None
        if ae is not None:
            ax.axhline(ae, color="#4C72B0", lw=1.2, label=f"AE 32-D: {ae:.3f}")
            ax.legend(fontsize=8)
        ax.set_xscale("log")
        ax.set_xticks(betas, [f"{b:g}" for b in betas])
        ax.set_xlabel("β")
        ax.set_title(f"VAE 32-D: {title}, mean ± sd, dots = seeds", fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def beta_figures(folder):
    """The β bridge's three pictures of the sweep in ``folder`` (from its summary.json), into it; the
    seeds sweep beside it, where there is one, gives the AEs' reference. Returns the files written."""
    summary = load(folder / "summary.json")
    seeds = folder.parent / "seeds" / "summary.json"
    reference = load(seeds) if seeds.exists() else None
    labels = load_mnist(device="cpu").y_test.numpy()
    ae = {g["model"]: g["metrics"] for g in (reference or {"groups": []})["groups"] if g["beta"] is None}
    written = []
    if _by_beta(summary, "vae2")[0] or _by_beta(summary, "vae32")[0]:
        rate_distortion(summary, {k: m.get("test_bce") for k, m in ae.items()}, folder / "rate_distortion.png")
        written.append("rate_distortion.png")
    if _by_beta(summary, "vae2")[0]:
        ref = None
        if reference and (folder.parent / "seeds" / "ae2_s0" / TEST_CODES).exists():
            ref = np.load(folder.parent / "seeds" / "ae2_s0" / TEST_CODES).astype(np.float32)
        latent_by_beta(summary, folder, labels, folder / "latent_by_beta.png", ref)
        written.append("latent_by_beta.png")
    if _by_beta(summary, "vae32")[0]:
        units_and_knn(summary, {k: m["knn_accuracy"]["mean"] for k, m in ae.items()}, folder / "beta_32d.png")
        written.append("beta_32d.png")
    return written


# (metric, panel title); the ELBO-type bounds and active units exist for the VAE only
LATENT_PANELS = [("test_bce", "reconstruction BCE (nats)"), ("test_mse", "reconstruction MSE"),
                 ("test_neg_elbo", "−ELBO and IWAE (nats, VAE)"), ("knn_accuracy", "kNN accuracy on the codes"),
                 ("active_units", "active units (VAE)"), ("fid_mnist", "FID-MNIST of samples (VAE: prior; AE: GMM of codes)"),
                 ("sample_confidence", "LeNet confidence on samples")]
KIND_COLORS = {"ae": "#4C72B0", "vae": "#C44E52"}


def by_latent(summary, path):
    """Every panel of ``LATENT_PANELS`` against the code size, the AE and the VAE on the same axes:
    mean ± sd over the seeds, each seed a dot (the −ELBO panel adds the IWAE bound, dashed)."""
    fig, axes = plt.subplots(2, 4, figsize=(15, 7))
    sizes = sorted({g["latent_dim"] for g in summary["groups"]})
    for ax, (key, title) in zip(axes.flat, LATENT_PANELS):
        for kind, color in KIND_COLORS.items():
            groups = sorted((g for g in summary["groups"] if g["label"].startswith(kind.upper() + " ")),
                            key=lambda g: g["latent_dim"])
            for k, fmt in [(key, "o-")] + ([("test_nll_iwae", "s--")] if key == "test_neg_elbo" else []):
                have = [g for g in groups if g["metrics"].get(k, {}).get("mean") is not None]
                if not have:
                    continue
                x = [g["latent_dim"] for g in have]
                ax.errorbar(x, [g["metrics"][k]["mean"] for g in have],
                            yerr=[g["metrics"][k]["sd"] or 0 for g in have], fmt=fmt, color=color, capsize=3,
                            ms=4, label=f"{kind.upper()}" + (" IWAE" if k == "test_nll_iwae" else ""))
                for g in have:
                    vals = g["metrics"][k]["values"]
                    ax.scatter([g["latent_dim"]] * len(vals), vals, s=6, color="k", zorder=3, linewidths=0)
        if key == "active_units":
            ax.plot(sizes, sizes, ":", color="gray", label="every dimension")
            ax.set_yscale("log", base=2)
            ax.set_yticks(sizes, [str(n) for n in sizes])
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.set_xlabel("code size (latent dimensions)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes.flat[-1].axis("off")
    epochs = {g["label"].split()[0]: g["setup"]["epochs"] for g in summary["groups"]}
    axes.flat[-1].text(0, 0.5, "mean ± sd over seeds; dots: the seeds\n"
                       + ", ".join(f"{k} {v} epochs" for k, v in sorted(epochs.items()))
                       + "\n(the 32-D scripts' defaults)\npython Models/sweep.py latent", fontsize=9, va="center")
    fig.suptitle("AE và VAE theo kích thước mã / AE and VAE against the code size", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
