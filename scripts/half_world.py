"""Write a world folder in half precision: the form the repository ships (sanawm_env/assets/world-small)
and that a GPU run carries (scripts/gpu_world.sh).

    python scripts/half_world.py outputs/world/refiner2/world sanawm_env/assets/world-small
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.world import load_world, save_world  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="world folder (world.json, dit.safetensors, ...)")
    parser.add_argument("dst", type=Path, help="output world folder (replaced whole)")
    args = parser.parse_args(argv)
    world = load_world(args.src)
    if world.info.quantization is not None:
        parser.error(f"{args.src} is quantized ({world.info.quantization}); halve the world it was made from instead")
    print(f"wrote {save_world(args.dst, world.half())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
