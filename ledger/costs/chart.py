"""PNG chart: monthly cost against members, one panel per price scenario, one line per mode.
The workload's other parameters (transfers per member, anchor interval, growth) stay fixed."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from . import model
from .measure import Measurements
from .prices import Prices

STYLES = {"hosting": ("tab:gray", "--"), "anchored": ("tab:green", "-"), "small-sqlite": ("tab:olive", ":"),
          "small-postgres": ("tab:brown", "--"), "mc-direct": ("tab:red", "-"),
          "mc-relayed": ("tab:orange", ":"), "erc20": ("tab:blue", "-.")}


def member_grid(members: int) -> list[int]:
    grid = {int(round(10 ** (k / 4))) for k in range(4, 25)}  # 10 .. 1,000,000, 4 per decade
    grid.add(members)
    return sorted(grid)


def write_chart(path: str | Path, w: model.Workload, prices: Prices, m: Measurements, *,
                nonces: str = "random") -> Path:
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    off = m.production()
    grid = member_grid(w.members)
    scenarios = prices.scenarios
    cols = min(3, len(scenarios))
    rows = -(-len(scenarios) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False, sharey=True)
    for ax, s in zip(axes.flat, scenarios):
        for mode in model.MODES:
            ys = []
            for n in grid:
                wn = replace(w, members=n)
                hosted = model.hosting_needs(wn, prices, off.cpu_s_per_transfer, off.db_bytes_per_transfer)
                ys.append(max(model.mode_cost(mode, wn, s, m.gas, hosted, prices, nonces=nonces).monthly_usd, 1e-4))
            color, ls = STYLES[mode]
            ax.plot(grid, ys, color=color, linestyle=ls, label=model.mode_labels(nonces)[mode])
        ax.axvline(w.members, color="black", linewidth=0.6, alpha=0.5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(s.label, fontsize=9)
        ax.set_xlabel("members")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("USD per month")
    for ax in list(axes.flat)[len(scenarios):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(f"Monthly cost vs members ({w.transfers_per_member:g} transfers/member/month, anchor every "
                 f"{w.anchor_every_hours:g} h, growth {w.growth:.0%}/month; measured gas)", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
