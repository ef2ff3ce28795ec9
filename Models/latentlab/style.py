"""Drawing style shared by the static figures and the GIFs: the digit palette, the digit scatter,
its legends and the prior's σ circles, so a digit has the same colour in every picture.
"""
import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.pyplot as plt  # noqa: E402

DIGIT_COLORS = plt.get_cmap("tab10")
PRIOR_CIRCLES = (1, 2, 3)  # radii in units of the prior's σ


def scatter_codes(ax, codes, labels, size=3, alpha=0.6):
    """One scatter per digit, coloured by ``DIGIT_COLORS``, each labelled for a legend."""
    for d in range(10):
        sel = labels == d
        ax.scatter(codes[sel, 0], codes[sel, 1], s=size, color=DIGIT_COLORS(d), alpha=alpha,
                   label=str(d), linewidths=0, rasterized=True)


def legend_beside(ax, markerscale=4):
    """The digits' legend to the right of the axes, markers opaque."""
    leg = ax.legend(title="chữ số", markerscale=markerscale, loc="center left", bbox_to_anchor=(1.0, 0.5),
                    frameon=False)
    for h in leg.legend_handles:
        h.set_alpha(1)


def legend_inside(ax):
    """A compact two-row digits' legend in the upper right corner, for the small GIF panels."""
    handles = [plt.Line2D([], [], marker="o", ls="", color=DIGIT_COLORS(d), ms=4) for d in range(10)]
    ax.legend(handles, [str(d) for d in range(10)], fontsize=6, ncol=5, loc="upper right",
              handletextpad=0.1, columnspacing=0.4, framealpha=0.7)


def prior_circles(ax, color="0.4", lw=0.7, labelled=False):
    """Dashed circles at 1σ, 2σ and 3σ of the N(0, I) prior, optionally marked "1σ", "2σ", "3σ"."""
    for r in PRIOR_CIRCLES:
        ax.add_patch(plt.Circle((0, 0), r, fill=False, ls="--", lw=lw, color=color))
        if labelled:
            ax.text(r * 0.71, r * 0.71, f"{r}σ", fontsize=7, color="0.35")
