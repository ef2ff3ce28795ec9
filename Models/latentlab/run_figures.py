"""Static pictures (PNG) and the list of what each script draws.

Each function takes plain arrays or a model and one output path, so figures can be redrawn from a
checkpoint (``--plots-only``) without training.
"""
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Ellipse
from scipy.stats import norm
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from sklearn.neighbors import KNeighborsClassifier

from . import exact, run_animations
from .style import DIGIT_COLORS, legend_beside, prior_circles, scatter_codes

DPI = 110


def _save(fig, path):
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def image_grid(images, nrow, pad=2):
    """(N, 784) images in [0, 1] -> one (H, W) array laid out as torchvision's make_grid does (``pad``
    pixels of 0 = white under gray_r around each tile), without importing torchvision (a slow import)."""
    t = torch.as_tensor(images, dtype=torch.float32).detach().cpu().view(-1, 28, 28)
    ncol = min(nrow, len(t))
    nrows = -(-len(t) // ncol)
    tiles = torch.zeros(nrows * ncol, 28 + pad, 28 + pad)
    tiles[:len(t), pad:, pad:] = t
    grid = tiles.view(nrows, ncol, 28 + pad, 28 + pad).permute(0, 2, 1, 3).reshape(nrows * (28 + pad), -1)
    return torch.nn.functional.pad(grid, (0, pad, 0, pad)).numpy()


def loss_curve(history, model, path):
    """The loss per epoch; for a variational model also its two terms, reconstruction and KL."""
    epochs = [h["epoch"] for h in history]
    parts = [("train_loss", "test_loss", "−ELBO (nats/ảnh)" if model.variational else f"{model.likelihood.loss_name} (nats/ảnh)")]
    if model.variational:
        parts += [("train_rec", "test_rec", "tái tạo / reconstruction (nats)"),
                  ("train_kl", "test_kl", "KL(q(z|x) ‖ p(z)) (nats)")]
    fig, axes = plt.subplots(1, len(parts), figsize=(4.2 * len(parts), 3.4), squeeze=False)
    for ax, (tr, te, title) in zip(axes[0], parts):
        ax.plot(epochs, [h[tr] for h in history], "o-", ms=3, label="train")
        ax.plot(epochs, [h[te] for h in history], "s-", ms=3, label="test")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        later = [h[k] for h in history[1:] for k in (tr, te)]
        if len(history) >= 3 and tr != "train_kl":
            # the first epoch's loss dwarfs the rest; show it cut off so later progress stays visible
            lo, hi = min(later), max(later)
            ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.25 * (hi - lo))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{model.label}: loss per epoch", fontsize=11)
    _save(fig, path)


@torch.no_grad()
def reconstructions(model, x_test, y_test, path, n=16):
    """Rows alternate: test digits, then their reconstructions."""
    x, y = x_test[:2 * n], y_test[:2 * n]
    recon = model.image(model.encode(x, y), y)
    rows = torch.cat([x[:n], recon[:n], x[n:], recon[n:]]).cpu()
    fig, ax = plt.subplots(figsize=(n * 0.55, 4 * 0.6))
    ax.imshow(image_grid(rows, n), cmap="gray_r", vmin=0, vmax=1)
    ax.set_yticks([15 + 30 * i for i in range(4)], ["gốc", "tái tạo", "gốc", "tái tạo"])
    ax.set_xticks([])
    ax.set_title("Ảnh test (gốc) và ảnh tái tạo / test digits and reconstructions", fontsize=10)
    _save(fig, path)


def latent_space(codes, labels, path, label, seed=0, tsne_points=1500):
    """2-D: the test codes themselves. More dimensions: a t-SNE map of a fixed subset of them."""
    fig, ax = plt.subplots(figsize=(6.2, 5.4))
    if codes.shape[1] == 2:
        scatter_codes(ax, codes, labels)
        ax.set_xlabel("z₁")
        ax.set_ylabel("z₂")
        ax.set_title(f"{label}: mã của {len(codes):,} ảnh test / test codes".replace(",", " "), fontsize=10)
    else:
        idx = np.random.default_rng(seed).permutation(len(codes))[:tsne_points]
        emb = TSNE(2, init="pca", perplexity=30, max_iter=500, random_state=seed).fit_transform(codes[idx])
        scatter_codes(ax, emb, labels[idx], size=5, alpha=0.8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{label}: t-SNE của {tsne_points} mã test {codes.shape[1]}-D", fontsize=10)
    legend_beside(ax)
    _save(fig, path)


def grid_coordinates(model, codes, n=20):
    """Where to decode a grid: for a model with the prior N(0, I), its quantiles (Kingma & Welling, fig. 4);
    for an autoencoder, whose codes have no prior of their own, the 1st-99th percentile box of the test codes."""
    if model.variational:
        xs = ys = norm.ppf(np.linspace(0.03, 0.97, n))
    else:
        lo, hi = np.percentile(codes, [1, 99], axis=0)
        xs, ys = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
    return xs, ys


@torch.no_grad()
def latent_grid(model, codes, path, n=20):
    xs, ys = grid_coordinates(model, codes, n)
    gx, gy = np.meshgrid(xs, ys[::-1])  # top row = largest z2, like a plot's y axis
    z = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32,
                     device=next(model.parameters()).device)
    grid = image_grid(model.image(z), n, pad=0)
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1)
    ticks = np.arange(n) * 28 + 14
    ax.set_xticks(ticks[::3], [f"{v:.2g}" for v in xs[::3]])
    ax.set_yticks(ticks[::3], [f"{v:.2g}" for v in ys[::-1][::3]])
    ax.set_xlabel("z₁")
    ax.set_ylabel("z₂")
    where = "ở các phân vị của N(0, 1)" if model.variational else "trên vùng chứa mã test (phân vị 1–99%)"
    ax.set_title(f"{model.label}: giải mã lưới {n}×{n} {where}", fontsize=10)
    _save(fig, path)


@torch.no_grad()
def label_planes(model, path, n=11):
    """A conditional model's plane decoded under each label: the same ``n`` x ``n`` grid of z at the
    quantiles of N(0, 1) in every panel, so a position in the plane is one style across the ten digits."""
    xs = norm.ppf(np.linspace(0.05, 0.95, n))
    gx, gy = np.meshgrid(xs, xs[::-1])
    device = next(model.parameters()).device
    z = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=torch.float32, device=device)
    fig, axes = plt.subplots(2, 5, figsize=(17, 7.4))
    for digit, ax in enumerate(axes.flat):
        y = torch.full((len(z),), digit, device=device)
        ax.imshow(image_grid(model.image(z, y), n, pad=0), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"y = {digit}", fontsize=11)
        ax.axis("off")
    fig.suptitle(f"{model.label}: cùng lưới {n}×{n} của z (phân vị 5–95% của N(0, 1)) giải mã với từng nhãn y / "
                 "the same z grid decoded under each label", fontsize=11)
    _save(fig, path)


@torch.no_grad()
def style_transfer(model, x_test, y_test, path, per_row=8):
    """Test digits' codes z = μ(x, y), each decoded under all ten labels: what z keeps when y changes."""
    idx = [int(np.flatnonzero(y_test.cpu().numpy() == d)[0]) for d in range(per_row)]
    x, y = x_test[idx], y_test[idx]
    z = model.encode(x, y)
    labels = torch.arange(model.condition_size, device=z.device)
    rows = [torch.cat([x[i:i + 1], model.image(z[i].expand(len(labels), -1), labels)]) for i in range(len(idx))]
    fig, ax = plt.subplots(figsize=(11 * 0.75, len(idx) * 0.8))
    ax.imshow(image_grid(torch.cat(rows), 1 + len(labels)), cmap="gray_r", vmin=0, vmax=1)
    ax.set_xticks([15 + 30 * i for i in range(1 + len(labels))], ["x"] + [f"y={d}" for d in range(len(labels))])
    ax.set_yticks([])
    ax.set_title("Mã z của một ảnh test (cột x), giải mã với cả mười nhãn: giữ nét chữ, đổi chữ số\n"
                 "one z, decoded under all ten labels: style kept, digit changed", fontsize=10)
    _save(fig, path)


@torch.no_grad()
def classified_plane(model, train_codes, y_train, path, seed=0, n_samples=400):
    """The latent plane coloured by the digit a kNN fit on the training codes assigns, with random
    prior samples on top and their decoded images; the VAE itself is not changed by this."""
    knn = KNeighborsClassifier(n_neighbors=15).fit(train_codes, y_train)
    lim = 3.2
    g = np.linspace(-lim, lim, 240)
    gx, gy = np.meshgrid(g, g)
    regions = knn.predict(np.stack([gx.ravel(), gy.ravel()], 1)).reshape(gx.shape)
    z = np.random.default_rng(seed).standard_normal((n_samples, 2)).astype(np.float32)
    pred = knn.predict(z)
    images = model.image(torch.from_numpy(z).to(next(model.parameters()).device))[:64]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5.6), gridspec_kw={"width_ratios": [1.15, 1]})
    ax.imshow(regions, origin="lower", extent=(-lim, lim, -lim, lim), cmap=DIGIT_COLORS, vmin=-0.5,
              vmax=9.5, alpha=0.35, interpolation="nearest")
    for d in range(10):
        sel = pred == d
        ax.scatter(z[sel, 0], z[sel, 1], s=14, color=DIGIT_COLORS(d), edgecolors="k", linewidths=0.3,
                   label=str(d))
    prior_circles(ax, color="0.3")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("z₁")
    ax.set_ylabel("z₂")
    ax.set_title("Vùng phân lớp kNN + mẫu ngẫu nhiên z ~ N(0, I)", fontsize=10)
    legend_beside(ax, markerscale=1)
    ax2.imshow(image_grid(images, 8), cmap="gray_r", vmin=0, vmax=1)
    for i, d in enumerate(pred[:64]):
        ax2.text(30 * (i % 8) + 4, 30 * (i // 8) + 9, str(d), color=DIGIT_COLORS(d), fontsize=8,
                 fontweight="bold")
    ax2.axis("off")
    ax2.set_title("64 mẫu đầu tiên được giải mã, kèm nhãn kNN", fontsize=10)
    _save(fig, path)


def samples(images, path, title):
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(image_grid(images[:64], 8), cmap="gray_r", vmin=0, vmax=1)
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def latent_pca(codes, labels, path, label, seed=0):
    pca = PCA(2, random_state=seed).fit(codes)
    emb = pca.transform(codes)
    ev = pca.explained_variance_ratio_ * 100
    fig, ax = plt.subplots(figsize=(6.2, 5.4))
    scatter_codes(ax, emb, labels, size=3)
    ax.set_xlabel(f"PC1 ({ev[0]:.1f}% phương sai)")
    ax.set_ylabel(f"PC2 ({ev[1]:.1f}% phương sai)")
    ax.set_title(f"{label}: PCA của mã test {codes.shape[1]}-D", fontsize=10)
    legend_beside(ax)
    _save(fig, path)


def kl_per_dim(kl, path):
    order = np.argsort(kl)[::-1]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar(np.arange(len(kl)), kl[order], color=["C0" if v > 0.01 else "0.7" for v in kl[order]])
    ax.set_xticks(np.arange(len(kl)), order, fontsize=6)
    ax.set_xlabel("chiều latent (xếp theo KL) / latent dimension, sorted")
    ax.set_ylabel("KL (nats/ảnh)")
    ax.set_title(f"KL của từng chiều: tổng {kl.sum():.1f} nats", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def true_posterior(model, x_test, labels, per_image, path):
    """For 8 test digits (the 4 with the largest gap -ELBO - exact, then 4 with the median gap): the
    exact posterior p(z|x) as a heat map under q(z|x)'s 1σ and 2σ ellipses, the digit and its
    reconstructions from q's mean and from p(z|x)'s mode; below, the gap's histogram over the test set.
    A conditional model's posteriors are p(z|x, y) and q(z|x, y), each digit under its own label."""
    gap = per_image["elbo"] - per_image["nll"]
    chosen = list(np.argsort(gap)[::-1][:4]) + list(np.argsort(np.abs(gap - np.median(gap)))[:4])
    half_ranges = np.broadcast_to(per_image["half_range"], gap.shape)
    fig = plt.figure(figsize=(17, 7.4))
    grid = fig.add_gridspec(3, 8, height_ratios=[2.6, 0.75, 2.0], hspace=0.35, wspace=0.3)
    coarse = {}  # one decoded coarse grid per (label, half-range) among the 8 digits
    with torch.no_grad():
        for col, i in enumerate(chosen):
            x, half_range = x_test[i], float(half_ranges[i])
            label = int(labels[i]) if model.conditional else None
            y = None if label is None else torch.tensor([label], device=x.device)
            if (label, half_range) not in coarse:
                centres = exact.coarse_centres(half_range=half_range)[0].to(x_test.device)
                coarse[label, half_range] = exact.decoded(model, centres, label)
            mu, logvar = (t[0].cpu().numpy() for t in model.posterior(x[None], y))
            sigma, top = np.exp(0.5 * logvar), exact.mode(model, x, coarse[label, half_range], half_range, label)
            width = max(8 * sigma.max(), 2.5 * np.abs(mu - top).max(), 0.25)
            dens, a, b, log_px = exact.posterior_grid(model, x, (mu + top) / 2, width, label=label)
            ax = fig.add_subplot(grid[0, col])
            # log density, 12 nats deep: a peak far narrower than the window stays visible
            log_dens = np.log(np.maximum(dens, 1e-300))
            ax.imshow(log_dens, extent=[a[0], a[-1], b[0], b[-1]], origin="lower", cmap="magma", aspect="equal",
                      vmin=log_dens.max() - 12, vmax=log_dens.max())
            for k, style in ((1, "-"), (2, "--")):
                ax.add_patch(Ellipse(mu, 2 * k * sigma[0], 2 * k * sigma[1], fill=False, ec="#4dd0ff", ls=style, lw=1.4))
            ax.plot(*mu, "+", color="#4dd0ff", ms=9, mew=2)
            ax.plot(*top, "x", color="white", ms=7, mew=2)
            ax.set_title(f"{'lớn nhất' if col < 4 else 'điển hình'} · số {labels[i]}\n"
                         f"khoảng cách {gap[i]:.1f} nats", fontsize=9)
            ax.tick_params(labelsize=7)
            recon = model.image(torch.tensor(np.stack([mu, top]), dtype=torch.float32),
                                None if y is None else y.expand(2)).cpu().numpy()
            strip = np.concatenate([x.cpu().numpy().reshape(28, 28), np.zeros((28, 2)), recon[0].reshape(28, 28),
                                    np.zeros((28, 2)), recon[1].reshape(28, 28)], 1)
            ax = fig.add_subplot(grid[1, col])
            ax.imshow(strip, cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([14, 44, 74], ["x", "μ_q (+)", "mode (×)"], fontsize=7)
            ax.set_yticks([])
    ax = fig.add_subplot(grid[2, :])
    ax.hist(gap, bins=120, color="C0", log=True)
    for i in chosen:
        ax.axvline(gap[i], color="C3" if i in chosen[:4] else "C2", lw=1, alpha=0.8)
    ax.set_xlabel("−ELBO − (−log p(x)) = KL(q(z|x) ‖ p(z|x)) của từng ảnh test (nats; −ELBO ước lượng với k = 100 mẫu)")
    ax.set_ylabel("số ảnh (thang log)")
    ax.set_title(f"Khoảng cách suy diễn trên 10 000 ảnh test: trung bình {gap.mean():.2f}, trung vị "
                 f"{np.median(gap):.2f}, {100 * (gap > 5).mean():.0f}% ảnh trên 5 nats; đỏ: 4 ảnh lớn nhất, "
                 f"xanh: 4 ảnh điển hình", fontsize=10)
    fig.suptitle("Hậu nghiệm thật p(z|x) (nền: log mật độ, 12 nats sâu, tính chính xác trên lưới) và q(z|x) "
                 "của encoder (elip 1σ liền, 2σ đứt, + là μ_q); × là mode của p(z|x)\n"
                 "Hàng giữa: ảnh x, ảnh giải mã từ μ_q và từ mode", fontsize=11)
    _save(fig, path)


def _ellipse(ax, mean, cov, color, label, k=2):
    """The ``k``-sigma ellipse of a 2-D Gaussian, from its covariance's eigenvectors."""
    w, v = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(v[1, 1], v[0, 1]))
    ax.add_patch(Ellipse(mean, 2 * k * np.sqrt(w[1]), 2 * k * np.sqrt(w[0]), angle=angle, fill=False, ec=color,
                         lw=1.5, label=label))


FAMILY_STYLE = {"encoder": ("#4dd0ff", "q của encoder"), "diagonal": ("#7CFC00", "q* chéo"),
                "full": ("#ffd400", "q* hiệp phương sai đầy đủ"), "flow": ("white", "q* flow (mẫu)")}


def _gap_histograms(ax, vi):
    """Each fitted image's amortization and approximation gap, as two histograms on a log count axis."""
    approximation, amortization = vi["log_px"] - vi["fitted_elbo"], vi["fitted_elbo"] - vi["encoder_elbo"]
    bins = np.linspace(min(approximation.min(), amortization.min(), 0), max(approximation.max(), amortization.max()), 120)
    ax.hist(amortization, bins=bins, color="C0", alpha=0.7, log=True,
            label=f"khấu hao ELBO(q*) − ELBO(encoder): trung bình {amortization.mean():.2f}, trung vị {np.median(amortization):.2f}")
    ax.hist(approximation, bins=bins, color="C3", alpha=0.7, log=True,
            label=f"xấp xỉ log p(x) − ELBO(q*): trung bình {approximation.mean():.2f}, trung vị {np.median(approximation):.2f}")
    ax.set_xlabel(f"nats, trên {len(approximation)} ảnh test đầu tiên (q* chéo, mỗi ảnh một q)")
    ax.set_ylabel("số ảnh (thang log)")
    ax.legend(fontsize=9)


def fitted_posteriors(model, x_test, labels, vi, path, say=print):
    """Per-image VI made visible (metrics.inference_metrics' fitted q's): for 4 digits with the largest inference
    gap among the study images and 4 typical ones, the true posterior p(z|x) (heat map, log density 12 nats
    deep) under the 2σ ellipses of the encoder's q and of q* of each Gaussian family, and draws of the flow's
    q*; below, each image's two gaps over the fitted images. Skipped when the run did no per-image VI."""
    if vi is None or len(vi["fitted"]) == 1:
        say("fitted_posteriors.png skipped: no richer family was fitted (the per-image VI had under 200 images)")
        return
    fitted = vi["fitted"]
    n = min(len(q.mu) for q in fitted.values())   # the study's images, where the richer families were fitted
    inference_gap = (vi["log_px"] - vi["encoder_elbo"])[:n]
    chosen = list(np.argsort(inference_gap)[::-1][:4]) + list(np.argsort(np.abs(inference_gap - np.median(inference_gap)))[:4])
    y_all = torch.as_tensor(labels, device=x_test.device) if model.conditional else None
    with torch.no_grad():
        mu_enc, logvar_enc = (t.cpu().numpy() for t in model.posterior(x_test[:n], None if y_all is None else y_all[:n]))
        gaussians = {f: [t.cpu().numpy() for t in fitted[f].mean_cov()] for f in ("diagonal", "full")}
        flow_draws = fitted["flow"].rsample(300, torch.Generator(device=x_test.device).manual_seed(0))[0].cpu().numpy()
    fig = plt.figure(figsize=(17, 5.6))
    grid = fig.add_gridspec(2, 8, height_ratios=[2.2, 1.3], hspace=0.2, wspace=0.3)
    coarse = {}   # one decoded coarse grid per label, to find each digit's true mode (a second one can be far)
    for col, i in enumerate(chosen):
        label = int(labels[i]) if model.conditional else None
        if label not in coarse:
            coarse[label] = exact.decoded(model, exact.coarse_centres()[0].to(x_test.device), label)
        top = exact.mode(model, x_test[i], coarse[label], label=label)
        means = [mu_enc[i], *(g[0][i] for g in gaussians.values()), flow_draws[:, i].mean(0), top]
        spread = np.ptp(np.vstack([means, flow_draws[:, i]]), axis=0).max()
        width = max(1.6 * spread, 6 * np.exp(0.5 * logvar_enc[i]).max(), 0.25)
        dens, a, b, _ = exact.posterior_grid(model, x_test[i], np.mean(means, 0), width, label=label)
        ax = fig.add_subplot(grid[0, col])
        log_dens = np.log(np.maximum(dens, 1e-300))
        ax.imshow(log_dens, extent=[a[0], a[-1], b[0], b[-1]], origin="lower", cmap="magma", aspect="equal",
                  vmin=log_dens.max() - 12, vmax=log_dens.max())
        ax.scatter(*flow_draws[:, i].T, s=1, c=FAMILY_STYLE["flow"][0], alpha=0.35, lw=0)
        _ellipse(ax, mu_enc[i], np.diag(np.exp(logvar_enc[i])), *FAMILY_STYLE["encoder"])
        ax.plot(*top, "x", color="white", ms=7, mew=2)
        for family, (mean, cov) in gaussians.items():
            _ellipse(ax, mean[i], cov[i], *FAMILY_STYLE[family])
        ax.set_xlim(a[0], a[-1])
        ax.set_ylim(b[0], b[-1])
        ax.set_title(f"{'lớn nhất' if col < 4 else 'điển hình'} · số {labels[i]}\n"
                     f"{inference_gap[i]:.1f} = {vi['fitted_elbo'][i] - vi['encoder_elbo'][i]:.1f}"
                     f" + {vi['log_px'][i] - vi['fitted_elbo'][i]:.1f} nats", fontsize=9)
        ax.tick_params(labelsize=7)
    handles = [plt.Line2D([], [], color=c, lw=2 if f != "flow" else 0, marker="" if f != "flow" else ".",
                          label=text) for f, (c, text) in FAMILY_STYLE.items()]
    fig.legend(handles=handles, loc="upper center", ncol=4, bbox_to_anchor=(0.5, 0.96), fontsize=9,
               facecolor="#333333", labelcolor="white")
    _gap_histograms(fig.add_subplot(grid[1, :]), vi)
    fig.suptitle("Suy diễn biến phân theo từng ảnh (Cremer et al., 2018): hậu nghiệm thật p(z|x) (nền), q của encoder và "
                 "q* tối ưu riêng cho ảnh đó trong từng họ (elip 2σ), × là mode của p(z|x)\ntiêu đề mỗi ô: khoảng "
                 "cách suy diễn = khấu hao + xấp xỉ (q* chéo), nats", fontsize=11, y=1.04)
    _save(fig, path)


def posterior_gif(state, labels, path, say=print):
    """posterior_evolution.gif from the per-epoch codes kept with the checkpoint, coloured by the
    labels of the very test images whose codes were kept (``state.frame_index``)."""
    if not state.code_frames:
        say("posterior_evolution.gif skipped: no per-epoch codes saved with this checkpoint")
        return
    run_animations.posterior_evolution(state.code_frames, labels[state.frame_index.numpy()], path)


COMMON = ("loss_curve.png", "reconstructions.png", "latent_space.png")  # what every script draws
FIGURES = {  # a script's ``figures`` (its ModelSpec) -> the files each draws besides COMMON
    "sampling_gifs": ("sampling_1.gif", "sampling_2.gif"),
    "latent_grid": ("latent_space_grid_sampling.png",),
    "vae_latent_walk": ("vae_latent_walk.gif",),
    "posterior_evolution": ("posterior_evolution.gif",),
    "classified_plane": ("latent_space_classified_random_samples.png",),
    "latent_walk": ("latent_walk.gif",),
    "samples": ("samples.png",),
    "latent_pca": ("latent_pca.png",),
    "kl_per_dim": ("kl_per_dim.png",),
    "true_posterior": ("true_posterior.png", "fitted_posteriors.png"),
    "label_planes": ("label_planes.png",),
    "style_transfer": ("style_transfer.png",),
}


def write_all(spec, model, data, state, extras, out, seed, say=print):
    """Write the common figures and the spec's extras into ``out``; return seconds per file."""
    codes, labels = extras["test_codes"], data.y_test.cpu().numpy()
    y_train = data.y_train.cpu().numpy()
    draw = {
        "loss_curve.png": lambda p: loss_curve(state.history, model, p),
        "reconstructions.png": lambda p: reconstructions(model, data.x_test, data.y_test, p),
        "latent_space.png": lambda p: latent_space(codes, labels, p, model.label, seed),
        "sampling_1.gif": lambda p: run_animations.ae_loop(model, codes, labels, p),
        "sampling_2.gif": lambda p: run_animations.ae_cluster_tour(model, codes, labels, p),
        "latent_space_grid_sampling.png": lambda p: latent_grid(model, codes, p),
        "vae_latent_walk.gif": lambda p: run_animations.vae_prior_walk(model, codes, labels, p),
        "posterior_evolution.gif": lambda p: posterior_gif(state, extras["frame_labels"], p, say),
        "latent_space_classified_random_samples.png":
            lambda p: classified_plane(model, extras["train_codes"], y_train, p, seed),
        "latent_walk.gif": lambda p: run_animations.pair_walk(model, data.x_test, labels, p),
        "samples.png": lambda p: samples(
            extras["samples"], p, "64 mẫu từ prior N(0, I)" if model.variational else
            "64 mẫu: GMM 10 thành phần trên mã huấn luyện (Ghosh et al., 2020)"),
        "latent_pca.png": lambda p: latent_pca(codes, labels, p, model.label, seed),
        "kl_per_dim.png": lambda p: kl_per_dim(extras["kl_per_dim"], p),
        "true_posterior.png": lambda p: true_posterior(model, data.x_test, labels, extras["per_image"], p),
        "fitted_posteriors.png": lambda p: fitted_posteriors(model, data.x_test, labels, extras["per_image"].get("vi"),
                                                             p, say),
        "label_planes.png": lambda p: label_planes(model, p),
        "style_transfer.png": lambda p: style_transfer(model, data.x_test, data.y_test, p),
    }
    timings = {}
    for name in COMMON + tuple(f for key in spec.figures for f in FIGURES[key]):
        began = time.perf_counter()
        draw[name](out / name)
        timings[name] = round(time.perf_counter() - began, 2)
    return timings
