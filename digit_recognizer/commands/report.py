"""`report RUN_DIR`: a run's figures as PNGs (digit_recognizer.report), and its projector embedding
when it has none."""

from __future__ import annotations

import argparse
from pathlib import Path

from digit_recognizer.names import PROJECTOR_CONFIG
from digit_recognizer.report import write_report, write_run_embedding


def main(argv: list[str]) -> None:
    """`report RUN_DIR [--output-dir DIR] [--embedding-images N] [--data-dir DIR]`."""
    parser = argparse.ArgumentParser(prog="python -m digit_recognizer report", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a run folder, e.g. lightning_logs/version_0")
    parser.add_argument("--output-dir", help="where to write the PNGs (default: the run folder)")
    parser.add_argument("--embedding-images", type=int, default=1000,
                        help="validation images for the projector embedding, written when the run has none (0: none)")
    parser.add_argument("--data-dir", help="folder of train.csv for the embedding (default: the run's)")
    args = parser.parse_args(argv)
    for path in write_report(args.run_dir, args.output_dir):
        print(f"wrote {path}")
    run_dir = Path(args.run_dir)
    if args.embedding_images > 0 and not (run_dir / PROJECTOR_CONFIG).is_file():
        count = write_run_embedding(run_dir, args.data_dir, args.embedding_images)
        if count is None:
            print("no projector embedding: the projector shows validation images, and this run trained on "
                  "every row (train with --data.val_fraction 0.1 to have some)")
        else:
            print(f"wrote the projector embedding of {count} validation images into {run_dir}")
