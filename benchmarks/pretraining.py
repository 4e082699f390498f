"""Success against true-world environment steps, with and without pretraining: the PPO runs' own
training curves (``rollout/success_rate`` and ``rollout/spl``, logged by ``agents.train_ppo``'s
callback over the episodes that ended in each rollout) side by side.

    python benchmarks/pretraining.py --run bc_ppo=outputs/bc/runs/<bc+ppo run> --run ppo=outputs/bc/runs/<ppo run>

Prints a markdown table (one row per PPO update), writes it as CSV and a plot beside ``--out``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def curve(run: Path, tag: str) -> dict[int, float]:
    """``tag``'s scalars of the TensorBoard logs under ``run/tb``, by environment step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points: dict[int, float] = {}
    for events in sorted((run / "tb").rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if tag in accumulator.Tags()["scalars"]:
            points.update({e.step: e.value for e in accumulator.Scalars(tag)})
    if not points:
        raise ValueError(f"{run}: no {tag!r} scalars under tb/ (a run of agents.train_ppo or agents.pretrain_bc on a goal task?)")
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, metavar="NAME=FOLDER", help="a labelled PPO run folder (repeat)")
    parser.add_argument("--out", default="outputs/bench/pretraining.csv", help="CSV path; the plot goes beside it (.png)")
    args = parser.parse_args()
    runs = dict(r.split("=", 1) for r in args.run)
    curves = {(name, tag): curve(Path(folder), f"rollout/{tag}") for name, folder in runs.items() for tag in ("success_rate", "spl")}
    steps = sorted(set().union(*(c.keys() for c in curves.values())))
    columns = [f"{name} {tag}" for name, tag in curves]
    rows = [[step] + [curves[key].get(step, np.nan) for key in curves] for step in steps]
    print("| env steps | " + " | ".join(columns) + " |\n|" + "---|" * (len(columns) + 1))
    for row in rows:
        print(f"| {row[0]} | " + " | ".join(f"{v:.2f}" for v in row[1:]) + " |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        csv.writer(f).writerows([["env_steps", *columns], *rows])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, tag in zip(axes, ("success_rate", "spl")):
        for name in runs:
            points = curves[name, tag]
            ax.plot(list(points), list(points.values()), label=name)
        ax.set(xlabel="true-world env steps", ylabel=tag, ylim=(0, 1.02))
        ax.legend()
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
