"""Gain against training compute: each version of a world, its cumulative training hours, and its PSNR
above repeating the first frame (the lower bracket) per split, from ``sanawm eval`` output folders.

    python benchmarks/world_curve.py --point "round 1:3.67:outputs/eval/sf" \\
        --point "round 2:5.6:outputs/world/eval/refiner2" --out outputs/bench/world_curve.json

Each point is LABEL:HOURS:EVAL_DIR (the folder holding ``metrics.json``). Prints a table of the gain over
the first seconds and over the whole rollout per split, writes JSON and a plot (PNG beside the JSON).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def parse_point(text: str) -> tuple[str, float, Path]:
    parts = text.rsplit(":", 2)
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"a point is LABEL:HOURS:EVAL_DIR, got {text!r}")
    label, hours, folder = parts
    try:
        value = float(hours)
    except ValueError:
        raise argparse.ArgumentTypeError(f"HOURS of {text!r} must be a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"HOURS of {text!r} must be >= 0")
    if not (Path(folder) / "metrics.json").is_file():
        raise argparse.ArgumentTypeError(f"{folder}: no metrics.json (a `sanawm eval` output folder)")
    return label, value, Path(folder)


def gains(folder: Path) -> dict[str, dict[str, float]]:
    """Per split: the world's early and whole-rollout PSNR and their margins over repeating the first frame."""
    metrics = json.loads((folder / "metrics.json").read_text())
    out = {}
    for split, result in metrics["splits"].items():
        world, lower = result["worlds"]["world"], result["worlds"]["repeat_first"]
        out[split] = {"seconds": result["seconds"], "early_psnr": world["early_psnr"], "psnr": world["fidelity_psnr"],
                      "early_gain": world["early_psnr"] - lower["early_psnr"], "gain": world["fidelity_psnr"] - lower["fidelity_psnr"]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--point", type=parse_point, action="append", required=True, help="LABEL:HOURS:EVAL_DIR, in training order")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/world_curve.json"))
    args = parser.parse_args(argv)
    rows = [{"label": label, "hours": hours, "eval": str(folder), "splits": gains(folder)} for label, hours, folder in args.point]
    splits = list(rows[0]["splits"])
    print("PSNR above repeating the first frame (dB), first 2 s / whole rollout")
    print(f"| version | training hours | {' | '.join(splits)} |")
    print(f"|---|---|{'---|' * len(splits)}")
    for r in rows:
        cells = " | ".join(f"{r['splits'][s]['early_gain']:+.2f} / {r['splits'][s]['gain']:+.2f}" if s in r["splits"] else "-" for s in splits)
        print(f"| {r['label']} | {r['hours']:.2f} | {cells} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "world_curve", "rows": rows}, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for s in splits:
        points = [(r["hours"], r["splits"][s]["early_gain"]) for r in rows if s in r["splits"]]
        ax.plot(*zip(*points), marker="o", label=s)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("training hours (cumulative)")
    ax.set_ylabel("PSNR over repeat-first, first 2 s (dB)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=120)
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
