"""The ``tth-adv`` command line: one subcommand per stage, each parse -> one library call -> print.

The stages themselves live in ``ttH_adv.app.stages`` (the demo calls the same functions); each
command here only turns its arguments into the stage's inputs and prints what it made.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from ..config import EXECUTORS, PROCESSING, SYSTEMATIC_MODES
from ..errors import TthAdvError
from .demo import DEMO_EVENTS, DEMO_EXECUTOR

log = logging.getLogger("ttH_adv")

CHANNEL_COUNTS = {"had": 4, "lep": 3}  # the reference analysis's categories per channel
QUIET_LIBRARIES = ("tf2onnx", "pyhf")


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in QUIET_LIBRARIES:  # their INFO lines (ONNX graph optimisation, pyhf's model building) only with -v
        logging.getLogger(name).setLevel(logging.WARNING if verbosity < 1 else logging.DEBUG)


def at_least(minimum: float, kind: type = int, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` no smaller than ``minimum`` (``above``: larger than it); argparse
    names the option and exits 2 with one line."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not (value > minimum if above else value >= minimum):
            raise argparse.ArgumentTypeError(f"must be {'above' if above else 'at least'} {minimum:g}, got {text}")
        return value

    parse.__name__ = f"{kind.__name__} {'>' if above else '>='} {minimum:g}"
    return parse


POSITIVE, NON_NEGATIVE = at_least(1), at_least(0)
POSITIVE_FLOAT = at_least(0.0, float, above=True)


# --------------------------------------------------------------------------- generate, manifest, summary


def cmd_generate(args: argparse.Namespace) -> int:
    """Write synthetic Run-2 ntuples and their datasets manifest."""
    from . import stages

    path = stages.generate(args.out, args.events, args.seed, args.files_per_sample, args.samples,
                           not args.no_progress, args.format, args.mismodel)
    log.info("datasets manifest: %s", path)
    print(path)
    return 0


def add_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--events", type=POSITIVE, required=True, help="total events over all samples (split by sample shares)")
    p.add_argument("--seed", type=NON_NEGATIVE, default=1, help="random seed (default 1); same seed, same files")
    p.add_argument("--files-per-sample", type=POSITIVE, default=None, help="files per sample (default: per-sample value)")
    p.add_argument("--samples", nargs="+", default=None, help="only these samples (default: all)")
    p.add_argument("--format", default="opendata2020",
                   help="input format of the files: opendata2020 (the 2020 Open Data release's layout, default) or "
                   "opendata2025 (the 2025 release's)")
    p.add_argument("--mismodel", action="store_true",
                   help="make the data with a detector that differs from the simulated one: jet energy scale +3%% "
                        "and photon calorimeter isolation +0.5 GeV, in data only (the simulation is unchanged)")


def cmd_manifest(args: argparse.Namespace) -> int:
    """Build a datasets manifest from Open Data-style ROOT files; print its summary table."""
    from ..inputs.opendata import summary_table
    from . import stages

    manifest, out = stages.make_manifest(args.inputs, args.out, args.luminosity_pb,
                                         key_values(args.role, "--role", "FILE_OR_DSID=ROLE"), args.format,
                                         xsec_values(args.xsec), tuple(args.catalogue), args.config)
    print(summary_table(manifest))
    print(f"manifest: {out}")
    return 0


def key_values(items: list[str], option: str, form: str) -> dict[str, str]:
    """KEY=VALUE command-line items as a mapping; a malformed one is an error naming the option."""
    pairs = {}
    for item in items:
        key, sep, value = item.rpartition("=")
        if not sep or not key or not value:
            raise TthAdvError(f"{option} takes {form}, got {item!r}")
        pairs[key] = value
    return pairs


def xsec_values(items: list[str]) -> dict[int, float]:
    """--xsec DSID=PB items as {DSID: cross-section in pb}."""
    try:
        xsecs = {int(k): float(v) for k, v in key_values(items, "--xsec", "DSID=PB").items()}
    except ValueError:
        raise TthAdvError(f"--xsec takes DSID=PB (an integer DSID, a cross-section in pb), got {items}") from None
    bad = {k: v for k, v in xsecs.items() if not v > 0}
    if bad:
        raise TthAdvError(f"--xsec: cross-sections must be positive, got {bad}")
    return xsecs


def add_manifest(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="folders (searched recursively), files or globs; root:// and https:// "
                   "paths are listed without being opened")
    p.add_argument("--out", required=True, help="manifest to write (JSON)")
    p.add_argument("--luminosity-pb", type=POSITIVE_FLOAT, default=None,
                   help="integrated luminosity of the data in pb^-1 (needed with MC files)")
    p.add_argument("--format", default=None, help="input format of every file (opendata2020, opendata2025, physlite, "
                   "physlite_r21, or one of --config's formats); default: detected per file from its tree and branches")
    p.add_argument("--role", action="append", default=[], metavar="FILE_OR_DSID=ROLE",
                   help="the role (data, signal, resonant, continuum) of a DSID or file the catalogue lacks; repeatable")
    p.add_argument("--xsec", action="append", default=[], metavar="DSID=PB",
                   help="the cross-section (pb, x BR x filter efficiency) of a DSID whose files carry none, as PHYSLITE "
                   "files; overrides the files' own; repeatable")
    p.add_argument("--catalogue", action="append", default=[], metavar="FILE",
                   help="a DSID catalogue (YAML, the layout of ttH_adv/data/opendata2025_gamgam.yaml) added to the "
                   "format's own; repeatable")
    p.add_argument("--config", default=None, help="analysis configuration whose 'formats' add or change profiles")


def cmd_summary(args: argparse.Namespace) -> int:
    """Print a one-screen summary of a datasets manifest."""
    from . import stages

    print(stages.summarise(args.datasets, args.config))
    return 0


def add_summary(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datasets", required=True, help="datasets manifest (JSON/YAML)")
    p.add_argument("--config", default=None, help="analysis configuration YAML (its input formats' trees)")


# --------------------------------------------------------------------------- run


def run_options(args: argparse.Namespace, **overrides):
    """The processor's run options from the command line's processing arguments."""
    from processors.run import RunOptions

    fields = {"executor": args.executor, "workers": args.workers, "chunksize": args.chunksize,
              "align_clusters": not args.exact_chunks, "maxchunks": args.maxchunks, "scheduler": args.scheduler,
              "systematics": args.systematics, "skip_bad_files": args.skip_bad_files, "progress": not args.no_progress,
              "worker_start": args.worker_start}
    return RunOptions(**{k: v for k, v in {**fields, **overrides}.items() if v is not None})


def _start_workers_early(args: argparse.Namespace) -> None:
    """Start the Dask fork server before the analysis imports, so they overlap (local Dask clusters only)."""
    from processors.workers import DEFAULT_WORKER_START, start_fork_server

    if args.executor == "dask" and not args.scheduler and getattr(args, "cluster", "local") == "local" and (
            args.worker_start or DEFAULT_WORKER_START) == "forkserver":
        start_fork_server()


def cmd_run(args: argparse.Namespace) -> int:
    """Run the processor over a datasets manifest and save the histograms and cutflows."""
    _start_workers_early(args)
    from ..output import summary
    from . import stages

    options = run_options(args, dump_dir=args.dump_features, unblind=args.unblind, model_path=args.model)
    processed = stages.process_files(args.datasets, args.out, args.config, options, args.categories, args.only,
                                     args.cluster)
    print(summary(processed.output))
    print(f"output: {processed.path}")
    return 0


def add_processing(p: argparse.ArgumentParser) -> None:
    """The arguments of every command that runs the processor."""
    p.add_argument("--config", default=None, help="analysis configuration YAML overriding the defaults")
    p.add_argument("--executor", choices=EXECUTORS, default=PROCESSING.executor,
                   help="iterative (debugging), futures (local processes) or dask (LocalCluster or --scheduler)")
    p.add_argument("--workers", type=POSITIVE, default=PROCESSING.workers,
                   help=f"worker processes for futures/dask (default {PROCESSING.workers})")
    p.add_argument("--chunksize", type=POSITIVE, default=PROCESSING.chunksize,
                   help=f"events per chunk, at least (default {PROCESSING.chunksize}): chunks end where every branch read starts a "
                        "new basket, so no basket is decompressed twice (--exact-chunks: exactly this size)")
    p.add_argument("--exact-chunks", action="store_true", help="cut chunks at exactly --chunksize events")
    p.add_argument("--maxchunks", type=POSITIVE, default=None, help="at most this many chunks per dataset (testing)")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (tcp://host:port)")
    p.add_argument("--worker-start", choices=["forkserver", "spawn"], default=None,
                   help="how a Dask LocalCluster starts its workers: forkserver (Linux default: one server imports "
                        "the analysis, workers fork from it) or spawn (a fresh interpreter each; the default elsewhere)")
    p.add_argument("--systematics", choices=SYSTEMATIC_MODES, default=PROCESSING.systematics,
                   help="none; weights (scale-factor variations); all (plus energy-scale variations)")
    p.add_argument("--skip-bad-files", action="store_true",
                   help="skip unreadable files or files lacking branches (listed in the output); default: stop")


def add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datasets", required=True, help="datasets manifest (JSON/YAML)")
    p.add_argument("--out", required=True, help="output file (.coffea) or folder (writes output.coffea there)")
    add_processing(p)
    p.add_argument("--dump-features", default=None, metavar="DIR", help="write selected events' features to parquet")
    p.add_argument("--unblind", action="store_true", help="show data in the 120-130 GeV signal region")
    p.add_argument("--only", nargs="+", default=None, metavar="DATASET", help="process only these datasets")
    p.add_argument("--model", default=None, help="ONNX model to score inside the processor (checked first)")
    p.add_argument("--cluster", choices=["local", "condor"], default="local",
                   help="with --executor dask: a LocalCluster (default) or an adaptive HTCondorCluster")
    p.add_argument("--categories", default=None, help="categories.json of 'tth-adv categorize' (needs --model)")


# --------------------------------------------------------------------------- condor, merge, export-root


def cmd_condor_submit(args: argparse.Namespace) -> int:
    """Split the work into slices, write the HTCondor submission and submit it (or only write it)."""
    from . import stages

    done = stages.condor_submit(args.out, args.config, args.datasets, args.jobs, args.chunksize, args.systematics,
                                args.model, args.resubmit_missing, args.dry_run)
    if done.path is None:
        print(f"every slice of {args.out} has its partial output: nothing to resubmit")
        return 0
    if done.slices is not None:
        print(f"resubmitting slices {done.slices}")
    print(f"submit description: {done.path}")
    if done.submitted is not None:
        print(done.submitted)
    return 0


def add_condor(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="condor_command", required=True, metavar="ACTION")
    s = actions.add_parser("submit", help="split into slices, write job.sub and submit (or --dry-run)")
    s.set_defaults(func=cmd_condor_submit)
    s.add_argument("--datasets", help="datasets manifest")
    s.add_argument("--jobs", type=POSITIVE, default=10, help="number of slices/jobs (default 10)")
    s.add_argument("--out", required=True, help="submit folder")
    s.add_argument("--config", default=None, help="analysis configuration YAML")
    s.add_argument("--chunksize", type=POSITIVE, default=PROCESSING.chunksize,
                   help=f"events per chunk (default {PROCESSING.chunksize})")
    s.add_argument("--systematics", choices=SYSTEMATIC_MODES, default=PROCESSING.systematics)
    s.add_argument("--model", default=None, help="ONNX model to score")
    s.add_argument("--dry-run", action="store_true", help="write the submission without submitting")
    s.add_argument("--resubmit-missing", action="store_true", help="resubmit only slices without a partial output")
    j = actions.add_parser("job", help="process one slice (run by each batch job)")
    j.set_defaults(func=cmd_condor_job)
    j.add_argument("--plan", required=True, help="plan.json of the submit folder")
    j.add_argument("--slice", required=True, help="slice number")
    j.add_argument("--out", required=True, help="partial output to write")


def cmd_condor_job(args: argparse.Namespace) -> int:
    """Process one slice of a plan (what each batch job runs)."""
    from . import stages

    print(stages.condor_job(args.plan, int(args.slice), args.out))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    """Merge batch partial outputs (refusing missing or duplicated slices), or the outputs of separate runs."""
    from ..output import summary
    from . import stages

    merged, path = stages.merge(args.out, args.plan, args.partials, args.outputs, args.allow_pickle)
    print(summary(merged))
    print(f"merged output: {path}")
    return 0


def add_allow_pickle(p: argparse.ArgumentParser) -> None:
    """Outputs of earlier versions are pickles, which run code when loaded: read only when asked."""
    p.add_argument("--allow-pickle", action="store_true",
                   help="also read an output of an earlier version (.coffea, a pickle: only a file you made)")


def add_merge(p: argparse.ArgumentParser) -> None:
    add_allow_pickle(p)
    p.add_argument("--plan", default=None, help="plan.json of the submit folder (with --partials)")
    p.add_argument("--partials", default=None, help="folder of partial_*.zip, or a comma-separated list")
    p.add_argument("--outputs", nargs="+", default=None, help="outputs of separate 'tth-adv run's to add (instead "
                   "of --plan/--partials); refused where their configuration, model or roles differ")
    p.add_argument("--out", required=True, help="merged output (.zip file or folder)")


def cmd_export_root(args: argparse.Namespace) -> int:
    """Write the m_yy histograms of a saved output to a ROOT file."""
    from . import stages

    print(f"ROOT histograms: {stages.export_root(args.input, args.out, args.allow_pickle)}")
    return 0


def add_export_root(p: argparse.ArgumentParser) -> None:
    add_allow_pickle(p)
    p.add_argument("--input", required=True, help="output of 'tth-adv run' (its .zip file or folder)")
    p.add_argument("--out", required=True, help="ROOT file to write")


# --------------------------------------------------------------------------- train


def cmd_train(args: argparse.Namespace) -> int:
    """Train the decorrelated classifier and baselines; export ONNX; write the Pareto table."""
    from . import stages

    overrides = {"epochs": args.epochs, "folds": args.folds, "layers": args.layers, "feature_set": args.feature_set,
                 "background": args.background}
    summary = stages.train_files(args.features, args.out, args.config, args.method, args.lam, args.lambda_scan,
                                 args.analysis_config, overrides, args.all_events,
                                 args.int8, args.seeds)
    print_training(summary, Path(args.out))
    return 0


def print_training(summary, out: Path) -> None:
    """The Pareto table, the lambda choices, the chosen model and the int8 parity, as ``train`` found them (a
    ``TrainingSummary``)."""
    print(summary.table)
    for method, choice in summary.lambda_choice.items():
        scanned = ", ".join(format(point.lam, "g") for point in choice.scan)
        print(f"{method}: lambda {choice.chosen:g} chosen from the scan {scanned} on seed {choice.seed}")
    chosen = summary.chosen
    print(f"chosen: {chosen.method} (lambda {chosen.lam:g}) -> {chosen.model}  [{chosen.rule}]")
    q = summary.int8
    if q and "refused" in q:
        print(f"no int8 model: {q['refused']}")
    elif q:
        print(f"int8 model: {out / 'model_int8.onnx'}  R50 {q['float']['r50']:.2f} -> {q['int8']['r50']:.2f}, "
              f"JSD50/floor {q['float']['ratio50']:.2f} -> {q['int8']['ratio50']:.2f}, 99% of scores within "
              f"{q['parity']['p99_abs_difference']:.2g} of the float model")
    print(f"out-of-fold scores of the training events: {summary.out_of_fold}")


def add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True, help="feature dump folder of 'tth-adv run --dump-features'")
    p.add_argument("--out", required=True, help="model folder: model.onnx (chosen), models/, results.json")
    from training.registry import METHODS

    taking = [name for name, spec in METHODS.items() if spec.takes_lambda]
    p.add_argument("--method", nargs="+", default=["adversarial"],
                   help=f"methods to train: {', '.join(METHODS)}, or 'all' (default adversarial)")
    p.add_argument("--lambda", dest="lam", type=at_least(0.0, float), default=None,
                   help=f"strength of the lambda-taking methods ({', '.join(taking)}); default: the training "
                   "configuration's lambdas (training/defaults.yaml)")
    p.add_argument("--lambda-scan", type=at_least(0.0, float), nargs="+", default=None, metavar="L",
                   help=f"train each lambda-taking method ({', '.join(taking)}) at each of these lambdas; with "
                        "--seeds, on the first seed, the others at the lambda the flatness target chooses")
    p.add_argument("--seeds", type=POSITIVE, default=1,
                   help="train every result with this many seeds (schedule.seed, +1, ...; default 1)")
    p.add_argument("--config", default=None, help="training configuration YAML overriding training/defaults.yaml")
    p.add_argument("--epochs", type=POSITIVE, default=None, help="adversarial/training epochs (override)")
    p.add_argument("--folds", type=at_least(2), default=None, help="k of the k-fold split by eventNumber (override)")
    p.add_argument("--layers", type=POSITIVE, nargs="+", default=None, help="classifier hidden widths (override)")
    p.add_argument("--feature-set", default=None, help="feature set: seed, scaled or extended (override)")
    p.add_argument("--background", default=None, choices=["ntni_data", "mc", "both"], help="background sample")
    p.add_argument("--analysis-config", default=None,
                   help="analysis configuration YAML (its mass window bins the JSD figures)")
    p.add_argument("--int8", action="store_true",
                   help="also write model_int8.onnx: onnxruntime static int8 quantisation of the chosen model, "
                        "calibrated on training events, with its parity and R50/JSD against the float model")
    p.add_argument("--all-events", action="store_true",
                   help="also train the chosen method once on all events: model_all_events.onnx, for data no "
                        "fold has seen (it scores its own training events in-sample)")


# --------------------------------------------------------------------------- categorize, fit


def print_categories(result, path: Path) -> None:
    """Each channel's boundaries and significances, as ``categorize`` found them (a ``CategoriesFile``)."""
    for channel, bounds in result.categories.items():
        z = result.details[channel].category_z
        fewer = result.fewer_than_requested.get(channel)
        note = f"  ({fewer.found} of the {fewer.requested} asked for: the sidebands support no more)" if fewer else ""
        print(f"{channel}: boundaries {[round(b, 4) for b in bounds]}  Z per category {[round(x, 2) for x in z]}{note}")
    print(f"combined expected Z (counting, quadrature) {result.combined_z:.2f} -> {path}")


def cmd_categorize(args: argparse.Namespace) -> int:
    """Optimise score-category boundaries per channel for the combined expected significance."""
    from . import stages

    result = stages.categorize_files(args.features, args.out, {"had": args.had, "lep": args.lep}, args.config,
                                     args.min_sideband)
    print_categories(result, Path(args.out))
    return 0


def add_category_counts(p: argparse.ArgumentParser) -> None:
    """How many score categories per channel, and how many sideband events each needs."""
    p.add_argument("--had", type=POSITIVE, default=CHANNEL_COUNTS["had"], help="hadronic categories (default 4, as the reference analysis)")
    p.add_argument("--lep", type=POSITIVE, default=CHANNEL_COUNTS["lep"], help="leptonic categories (default 3, as the reference analysis)")
    p.add_argument("--min-sideband", type=NON_NEGATIVE, default=10, help="minimum TI data sideband events per category")


def add_categorize(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", required=True, help="feature dump of a run with --model (has the score)")
    p.add_argument("--out", required=True, help="categories.json to write")
    add_category_counts(p)
    p.add_argument("--config", default=None, help="analysis configuration YAML (its mass window) used for the run")


def cmd_fit(args: argparse.Namespace) -> int:
    """Sideband fits, spurious-signal test, signal model, significance and the pyhf workspace."""
    from ..stats.fit_analysis import category_table, impact_table, pyhf_summary
    from . import stages

    result = stages.fit_files(args.histograms, args.out, args.config, args.unblind, args.allow_pickle)
    print(category_table(result))
    print("\n".join(pyhf_summary(result) + impact_table(result)))
    print(f"fits: {Path(args.out) / 'fits.json'}\npyhf workspace: {Path(args.out) / 'workspace.json'}")
    if args.strict and result.fallback:
        log.error("--strict: no acceptable background function in %s (kept with the fall-back function)",
                  ", ".join(result.fallback))
        return 1
    return 0


def add_fit(p: argparse.ArgumentParser) -> None:
    add_allow_pickle(p)
    p.add_argument("--histograms", required=True, help="output of 'tth-adv run' (its .zip file or folder)")
    p.add_argument("--out", required=True, help="folder for fits.json and workspace.json")
    p.add_argument("--unblind", action="store_true", help="fit the data in the signal region (default: Asimov)")
    p.add_argument("--strict", action="store_true",
                   help="exit non-zero when a category has no acceptable background function (it is kept with "
                        "the fall-back: the family of smallest spurious signal)")
    p.add_argument("--config", default=None, help="analysis configuration YAML (its mass window) used for the run")


# --------------------------------------------------------------------------- compare, report


def cmd_compare(args: argparse.Namespace) -> int:
    """Every trained result scored, categorised, filled and fitted alike; one table in the final metric."""
    _start_workers_early(args)
    from ..stats.compare import comparison_markdown, comparison_summary
    from . import stages

    table = stages.compare_files(args.datasets, args.models, args.out, args.config, run_options(args),
                                 {"had": args.had, "lep": args.lep}, args.min_sideband)
    print("\n".join(comparison_markdown(table)))
    print(comparison_summary(table))
    print(f"comparison: {Path(args.out) / 'comparison.md'} (and .json); per result: {args.out}/<result>/")
    return 0


def add_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datasets", required=True, help="datasets manifest (JSON/YAML)")
    p.add_argument("--models", required=True, nargs="+", metavar="MODELDIR",
                   help="training folders of 'tth-adv train' (each one feature set); every result in them is compared")
    p.add_argument("--out", required=True, help="folder for the comparison and each result's categories and fits")
    add_category_counts(p)
    add_processing(p)
    # the fill pass varies the Higgs samples for the fits' nuisance parameters: every variation unless told otherwise
    p.set_defaults(systematics="all")


def cmd_report(args: argparse.Namespace) -> int:
    """Plots and report.md of any fitted outputs (and, optionally, their training and a comparison)."""
    from . import stages

    path = stages.report_saved(args.out, args.histograms, args.fits, args.labels, args.training, args.features,
                               args.comparison, args.config, args.score_column, args.allow_pickle)
    print(f"report: {path}")
    return 0


def add_report(p: argparse.ArgumentParser) -> None:
    add_allow_pickle(p)
    p.add_argument("--histograms", required=True, nargs="+", help="outputs of 'tth-adv run' (files or folders)")
    p.add_argument("--fits", required=True, nargs="+", help="the fits folder of each output ('tth-adv fit --out')")
    p.add_argument("--labels", nargs="+", default=None, help="a name for each (default: the fits folders' names)")
    p.add_argument("--training", nargs="*", default=[], metavar="MODELDIR", help="training folders to plot")
    p.add_argument("--features", default=None, help="a scored feature dump, for the sculpting plot")
    p.add_argument("--score-column", default="score", help="its score column (score@<result> in a comparison's dump)")
    p.add_argument("--comparison", default=None, help="a 'tth-adv compare' folder: its table opens the report")
    p.add_argument("--out", required=True, help="report folder (report.md, PNG and PDF plots)")
    p.add_argument("--config", default=None, help="analysis configuration YAML (its mass window) used for the run")


# --------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole chain on the default synthetic data, reusing finished stages."""
    from . import demo

    print(demo.run_command(args.out, args.events, args.seed, args.executor, args.workers, not args.no_progress,
                      args.format, args.quick))
    return 0


def add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="tth-demo", help="output folder (default: tth-demo); reruns reuse it")
    p.add_argument("--events", type=POSITIVE, default=DEMO_EVENTS, help=f"events to generate (default {DEMO_EVENTS})")
    p.add_argument("--seed", type=NON_NEGATIVE, default=1, help="random seed (default 1)")
    p.add_argument("--executor", choices=EXECUTORS, default=DEMO_EXECUTOR,
                   help=f"executor for the processing stages (default {DEMO_EXECUTOR})")
    p.add_argument("--workers", type=POSITIVE, default=PROCESSING.workers,
                   help=f"worker processes (default {PROCESSING.workers})")
    p.add_argument("--quick", action="store_true", help="tiny networks and few categories (for tests, not physics)")
    p.add_argument("--format", default="opendata2020", help="input format of the generated ntuples: opendata2020 "
                   "(default) or opendata2025; the whole chain then reads that format")


# --------------------------------------------------------------------------- parser

COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int] | None, Callable[[argparse.ArgumentParser], None], str]] = {
    "generate": (cmd_generate, add_generate, "write synthetic Run-2 ntuples (ATLAS Open Data format) and datasets.json"),
    "manifest": (cmd_manifest, add_manifest, "build a datasets manifest from ROOT files named like the ATLAS Open Data "
                 "13 TeV GamGam release (data_*.root, mc_<DSID>.*.root): roles from the packaged catalogue, "
                 "cross-sections and sums of weights from the files"),
    "summary": (cmd_summary, add_summary, "summarise a datasets manifest: files, events, cross-sections, expected yields"),
    "run": (cmd_run, add_run, "run the ttH(yy) processor: selection, regions, channels, histograms, cutflow"),
    "condor": (None, add_condor, "plain HTCondor batch: submit slices, run one slice"),
    "merge": (cmd_merge, add_merge, "merge batch partial outputs (refuses missing or duplicated slices)"),
    "export-root": (cmd_export_root, add_export_root, "write the m_yy histograms of an output to a ROOT file"),
    "train": (cmd_train, add_train, "train the mass-decorrelated classifier (and baselines) on a feature dump; "
              "export ONNX; print the rejection-vs-sculpting table"),
    "categorize": (cmd_categorize, add_categorize,
                   "optimise score categories (Had 1..N, Lep 1..M) for expected significance"),
    "fit": (cmd_fit, add_fit, "sideband fits, spurious signal, signal model, significance; pyhf workspace"),
    "compare": (cmd_compare, add_compare, "every trained result through score, categorize, fill and fit: the methods "
                "side by side in expected significance with the background-modelling uncertainty"),
    "report": (cmd_report, add_report, "plots and report.md of fitted outputs"),
    "demo": (cmd_demo, add_demo, "run the analysis chain on the embedded default synthetic data"),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand (each command's arguments from its ``add_*``)."""
    parser = argparse.ArgumentParser(
        prog="tth-adv",
        description="ttH(H->yy) analysis with a mass-decorrelated classifier: generate ntuples, "
                    "run the coffea processors, train, fit.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (func, add_arguments, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if func is not None:
            p.set_defaults(func=func)
        add_arguments(p)
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
