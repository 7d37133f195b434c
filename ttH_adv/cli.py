"""The ``tth-adv`` command line: one subcommand per stage of the analysis."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import TthAdvError

log = logging.getLogger("ttH_adv")

DEMO_EVENTS = 200_000


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")


def cmd_generate(args: argparse.Namespace) -> int:
    """Write synthetic Run-2 ntuples and their datasets manifest."""
    from .generator import generate_dataset

    path = generate_dataset(args.out, args.events, args.seed, files_per_sample=args.files_per_sample,
                            samples=args.samples, show_progress=not args.no_progress)
    log.info("datasets manifest: %s", path)
    print(path)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """Print a one-screen summary of a datasets manifest."""
    from .summary import summarise_manifest

    print(summarise_manifest(args.datasets))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate the default synthetic dataset (if not there yet) and summarise it."""
    from .generator import generate_dataset
    from .summary import summarise_manifest

    out = Path(args.out)
    manifest = out / "ntuples" / "datasets.json"
    if manifest.is_file():
        log.info("reusing ntuples in %s (delete the folder to regenerate)", manifest.parent)
    else:
        log.info("stage 1/1: generating %d synthetic events (seed %d)", args.events, args.seed)
        generate_dataset(manifest.parent, args.events, args.seed, show_progress=not args.no_progress)
    print(summarise_manifest(manifest))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tth-adv",
        description="ttH(H->yy) analysis with a mass-decorrelated classifier: generate ntuples, "
                    "run the coffea processors, train, fit.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    g = add("generate", cmd_generate, "write synthetic Run-2 ntuples (ATLAS Open Data format) and datasets.json")
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument("--events", type=int, required=True, help="total events over all samples (split by sample shares)")
    g.add_argument("--seed", type=int, default=1, help="random seed (default 1); same seed, same files")
    g.add_argument("--files-per-sample", type=int, default=None, help="files per sample (default: per-sample value)")
    g.add_argument("--samples", nargs="+", default=None, help="only these samples (default: all)")

    s = add("summary", cmd_summary, "summarise a datasets manifest: files, events, cross-sections, expected yields")
    s.add_argument("--datasets", required=True, help="datasets manifest (JSON/YAML)")

    d = add("demo", cmd_demo, "run the analysis chain on the embedded default synthetic data")
    d.add_argument("--out", default="tth-demo", help="output folder (default: tth-demo); reruns reuse it")
    d.add_argument("--events", type=int, default=DEMO_EVENTS, help=f"events to generate (default {DEMO_EVENTS})")
    d.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tth-adv`` console script."""
    args = build_parser().parse_args(argv)
    _setup_logging(-1 if args.quiet else args.verbose)
    try:
        return args.func(args)
    except TthAdvError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
