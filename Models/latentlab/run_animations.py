"""GIFs, composed from arrays: matplotlib draws each static background once, then every frame is a
copy of it with a few pixels stamped in (moving point, decoded digit, progress bar); the path's
points are decoded in one batch. Frames go to imageio with ``loop=0`` (repeat forever).
"""
import imageio.v3 as iio
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .style import DIGIT_COLORS, legend_inside, prior_circles, scatter_codes

RED = np.array([220, 20, 30], dtype=np.uint8)
DIGIT_PX = 168          # the decoded digit is shown 6x enlarged
FRAME_MS = 60


# --------------------------------------------------------------------------- building blocks

class Background:
    """A matplotlib figure rendered once to RGB, plus the map from data to pixel coordinates."""

    def __init__(self, fig, ax):
        fig.canvas.draw()
        self.rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
        self._transform = ax.transData
        self._height = self.rgb.shape[0]
        plt.close(fig)

    def pixels(self, xy):
        """(N, 2) data coordinates -> (rows, cols) integer pixel indices in ``rgb``."""
        p = self._transform.transform(np.asarray(xy, dtype=float))
        return (self._height - p[:, 1]).round().astype(int), p[:, 0].round().astype(int)


def _disk(radius):
    r = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(r, r, indexing="ij")
    keep = dy ** 2 + dx ** 2 <= radius ** 2 + 0.5
    return dy[keep], dx[keep]


def stamp(frame, rows, cols, colors, radius):
    """Paint filled disks at many pixel positions at once (vectorised, clipped to the frame)."""
    dy, dx = _disk(radius)
    rr = (np.asarray(rows)[:, None] + dy).ravel()
    cc = (np.asarray(cols)[:, None] + dx).ravel()
    colors = np.broadcast_to(colors, (len(rows), 3))
    col = np.repeat(colors, len(dy), axis=0)
    ok = (rr >= 0) & (rr < frame.shape[0]) & (cc >= 0) & (cc < frame.shape[1])
    frame[rr[ok], cc[ok]] = col[ok]


def digit_tiles(images, size=DIGIT_PX):
    """(N, 784) in [0, 1] -> (N, size, size, 3) uint8, dark ink on white, nearest-neighbour scaled."""
    k = size // 28
    img = (255 * (1 - images.reshape(-1, 28, 28).clip(0, 1))).astype(np.uint8)
    img = img.repeat(k, axis=1).repeat(k, axis=2)
    return np.repeat(img[..., None], 3, axis=3)


def side_by_side(left, right, gap=12):
    """Place ``right`` vertically centred to the right of ``left`` on white."""
    h = max(left.shape[0], right.shape[0])
    out = np.full((h, left.shape[1] + gap + right.shape[1], 3), 255, np.uint8)
    out[(h - left.shape[0]) // 2:(h - left.shape[0]) // 2 + left.shape[0], :left.shape[1]] = left
    top = (h - right.shape[0]) // 2
    out[top:top + right.shape[0], left.shape[1] + gap:] = right
    return out


def save_gif(path, frames, ms=FRAME_MS):
    """One palette for all frames (from the first and middle frames, a grey ramp for the digits and
    the marker red), so Pillow skips per-frame quantisation, the slow part of writing RGB frames."""
    frames = np.stack(frames)
    ramp = np.repeat(np.linspace(0, 255, 64).astype(np.uint8)[:, None], 3, axis=1)
    extra = np.concatenate([np.repeat(ramp, 40, axis=0), np.tile(RED, (4000, 1))])
    sample = np.concatenate([frames[0].reshape(-1, 3), frames[len(frames) // 2].reshape(-1, 3), extra])
    palette = Image.fromarray(sample[:, None, :]).quantize(256, method=Image.Quantize.MEDIANCUT)
    indexed = np.stack([np.asarray(Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE))
                        for f in frames])
    iio.imwrite(path, indexed, extension=".gif", duration=ms, loop=0,
                palette=bytes(palette.getpalette()[:768]))


def resample_closed(points, n):
    """``n`` points at equal arc length along the closed polyline through ``points``."""
    pts = np.vstack([points, points[:1]])
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0], np.cumsum(seg)])
    t = np.linspace(0, s[-1], n, endpoint=False)
    return np.stack([np.interp(t, s, pts[:, 0]), np.interp(t, s, pts[:, 1])], axis=1)


@torch.no_grad()
def decode_np(model, z):
    device = next(model.parameters()).device
    zt = torch.as_tensor(np.asarray(z), dtype=torch.float32, device=device)
    return model.image(zt).cpu().numpy()


# --------------------------------------------------------------------------- 2-D walks

def _scatter_background(codes, labels, paths, title, lims=None, prior=False):
    fig, ax = plt.subplots(figsize=(4.4, 4.4), dpi=90)
    scatter_codes(ax, codes, labels, size=2, alpha=0.5)
    if prior:
        prior_circles(ax)
    for path_xy in paths:
        closed = np.vstack([path_xy, path_xy[:1]])
        ax.plot(closed[:, 0], closed[:, 1], color="0.25", lw=0.8, alpha=0.7)
    if lims is not None:
        ax.set_xlim(*lims[0])
        ax.set_ylim(*lims[1])
    if lims is None:
        ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    legend_inside(ax)
    fig.tight_layout()
    return Background(fig, ax)


def walk_gif(model, codes, labels, paths, out, title, prior=False, lims=None):
    """The red point moves along each closed path in turn over the test codes; the decoded digit
    is shown beside it."""
    bg = _scatter_background(codes, labels, paths, title, lims, prior)
    path_xy = np.vstack(paths)
    rows, cols = bg.pixels(path_xy)
    tiles = digit_tiles(decode_np(model, path_xy))
    frames = []
    for i in range(len(path_xy)):
        frame = bg.rgb.copy()
        stamp(frame, [rows[i]], [cols[i]], 0, 6)
        stamp(frame, [rows[i]], [cols[i]], RED, 4)
        tile = tiles[i].copy()
        tile[[0, -1], :] = tile[:, [0, -1]] = 120  # a thin frame around the digit
        frames.append(side_by_side(frame, tile))
    save_gif(out, frames)


def central_limits(codes, paths=(), pad=0.08):
    """Axis limits over the central 1-99 % of the codes and the whole of any paths: an AE's codes
    have no prior to keep them near the origin, and a few far outliers would shrink the rest to a dot."""
    lo, hi = np.percentile(codes, [1, 99], axis=0)
    if len(paths):
        pts = np.vstack(paths)
        lo, hi = np.minimum(lo, pts.min(0)), np.maximum(hi, pts.max(0))
    span = hi - lo
    return tuple((lo[i] - pad * span[i], hi[i] + pad * span[i]) for i in range(2))


def ae_loop(model, codes, labels, out, n=90):
    """A smooth closed loop around the data: an ellipse on the codes' principal axes at 1.3 sigma."""
    mean = codes.mean(0)
    evals, evecs = np.linalg.eigh(np.cov(codes, rowvar=False))
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    unit = np.stack([np.cos(t), np.sin(t)], 1) * (1.3 * np.sqrt(evals))
    path_xy = mean + unit @ evecs.T
    walk_gif(model, codes, labels, [path_xy], out, "AE: vòng quanh dữ liệu / loop around the codes",
             lims=central_limits(codes, [path_xy]))


def ae_cluster_tour(model, codes, labels, out, n=120):
    """A tour through every digit's cluster centre (median code), in nearest-neighbour order."""
    centres = np.stack([np.median(codes[labels == d], axis=0) for d in range(10)])
    order, left = [0], set(range(1, 10))
    while left:
        nxt = min(left, key=lambda d: np.linalg.norm(centres[d] - centres[order[-1]]))
        order.append(nxt)
        left.remove(nxt)
    path_xy = resample_closed(centres[order], n)
    walk_gif(model, codes, labels, [path_xy], out,
             "AE: đi qua tâm các cụm " + "→".join(map(str, order)), lims=central_limits(codes, [path_xy]))


def vae_prior_walk(model, codes, labels, out, n=100):
    """A circle at 1.5 sigma, then a figure-eight reaching 1.5-2 sigma, in prior coordinates; both
    start at (1.5, 0) so the point never jumps."""
    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    circle = 1.5 * np.stack([np.cos(t), np.sin(t)], 1)
    eight = np.stack([1.5 * np.cos(t), 1.3 * np.sin(2 * t)], 1)
    paths = [resample_closed(circle, n // 2), resample_closed(eight, n - n // 2)]
    walk_gif(model, codes, labels, paths, out, "VAE: đi trong không gian prior (vòng tròn, số 8)",
             prior=True, lims=((-3.3, 3.3), (-3.3, 3.3)))


def posterior_evolution(code_frames, labels, out, min_frames=64, hold=8):
    """Test posterior means after every epoch (epoch 0 = untrained), eased in between epochs.

    At least ``min_frames`` distinct frames: short runs get more in-between frames per epoch
    (identical frames would be merged by the GIF writer)."""
    frames_xy = [np.asarray(f, dtype=np.float32) for f in code_frames]
    fig, ax = plt.subplots(figsize=(4.6, 4.6), dpi=90)
    prior_circles(ax, lw=0.8, labelled=True)
    ax.set_xlim(-4, 4)
    ax.set_ylim(-4, 4)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
    ax.set_title("VAE: trung bình hậu nghiệm của ảnh test theo epoch", fontsize=9)
    legend_inside(ax)
    fig.tight_layout()
    bg = Background(fig, ax)
    colors = (np.array([DIGIT_COLORS(int(d))[:3] for d in labels]) * 255).astype(np.uint8)
    bar_y = bg.rgb.shape[0] - 6
    epochs = len(frames_xy) - 1
    between = max(3, -(-min_frames // max(1, epochs)))
    label_box, labels_rgb = _text_labels([f"epoch {e}/{epochs}" for e in range(epochs + 1)], bg.pixels([[-3.85, 3.85]]))
    frames = []
    steps = [(e, s / between) for e in range(epochs) for s in range(between)] + [(epochs, 0.0)] * hold
    for e, a in steps:
        a = 0.5 - 0.5 * np.cos(np.pi * a)  # ease in and out between two epochs
        xy = frames_xy[e] if a == 0 else (1 - a) * frames_xy[e] + a * frames_xy[e + 1]
        rows, cols = bg.pixels(xy)
        frame = bg.rgb.copy()
        stamp(frame, rows, cols, colors, 1)
        done = int((e + a) / max(1, epochs) * (frame.shape[1] - 20))
        frame[bar_y - 2:bar_y + 2, 10:10 + done] = RED  # progress bar: epochs done
        frame[label_box] = labels_rgb[min(epochs, e + round(a))]
        frames.append(frame)
    save_gif(out, frames, ms=90)


def _text_labels(texts, corner):
    """Render each text once with Pillow into same-sized RGB patches placed at ``corner`` (row, col)."""
    font = ImageFont.load_default(size=14)
    w = max(int(font.getlength(t)) for t in texts) + 8
    patches = []
    for t in texts:
        img = Image.new("RGB", (w, 20), "white")
        ImageDraw.Draw(img).text((4, 2), t, fill=(20, 20, 20), font=font)
        patches.append(np.asarray(img))
    r, c = int(corner[0][0]), int(corner[1][0])
    return (slice(r, r + 20), slice(c, c + w)), patches


# --------------------------------------------------------------------------- 32-D walks

def slerp(a, b, t):
    """Spherical interpolation (Shoemake, 1985; White, 2016 for generative models)."""
    an, bn = a / np.linalg.norm(a), b / np.linalg.norm(b)
    omega = np.arccos(np.clip(an @ bn, -1, 1))
    if omega < 1e-6:
        return (1 - t)[:, None] * a + t[:, None] * b
    return (np.sin((1 - t) * omega)[:, None] * a + np.sin(t * omega)[:, None] * b) / np.sin(omega)


def pair_walk(model, x_test, labels, out, classes=(3, 8, 1, 7, 0, 5), per_pair=16):
    """Decoded interpolations through test digits of different classes, looping back to the start:
    linear for an autoencoder; spherical for a model with the prior N(0, I), which puts little mass near
    the origin."""
    idx = [int(np.flatnonzero(labels == c)[0]) for c in classes]
    with torch.no_grad():
        anchors = model.encode(x_test[idx]).cpu().numpy()
    t = np.linspace(0, 1, per_pair, endpoint=False)
    path, pairs = [], []
    for i in range(len(idx)):
        a, b = anchors[i], anchors[(i + 1) % len(idx)]
        path.append(slerp(a, b, t) if model.variational else (1 - t)[:, None] * a + t[:, None] * b)
        pairs += [(i, (i + 1) % len(idx))] * per_pair
    tiles = digit_tiles(decode_np(model, np.vstack(path)))
    originals = digit_tiles(x_test[idx].cpu().numpy(), 84)
    frames = []
    for k, (i, j) in enumerate(pairs):
        canvas = np.full((DIGIT_PX + 24, 84 + 16 + DIGIT_PX + 16 + 84, 3), 255, np.uint8)
        top = (DIGIT_PX - 84) // 2
        canvas[top:top + 84, :84] = originals[i]
        canvas[:DIGIT_PX, 100:100 + DIGIT_PX] = tiles[k]
        canvas[top:top + 84, -84:] = originals[j]
        done = int((k % per_pair + 1) / per_pair * DIGIT_PX)
        canvas[DIGIT_PX + 10:DIGIT_PX + 14, 100:100 + done] = RED  # progress from left to right digit
        frames.append(canvas)
    save_gif(out, frames, ms=70)
