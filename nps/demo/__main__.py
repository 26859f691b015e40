"""``python -m nps.demo OUT_DIR [--preset demo|small] [--seed N] [--quiet]``"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from nps.demo.generator import PRESETS, generate


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m nps.demo", description="Write the seeded demo source drops.")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    ap.add_argument("--seed", type=int, default=None, help="override the preset's seed")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    cfg = PRESETS[args.preset] if args.seed is None else replace(PRESETS[args.preset], seed=args.seed)
    manifest = generate(args.out_dir, cfg, progress=not args.quiet)
    print(json.dumps({"counts": manifest["counts"], "nps": manifest["stats"]["nps"]}))


if __name__ == "__main__":
    main()
