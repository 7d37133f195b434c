"""The ``tth-adv`` command line: one subcommand per stage of the analysis."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from .demo import DEMO_EVENTS
from .errors import TthAdvError

log = logging.getLogger("ttH_adv")



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


def cmd_manifest(args: argparse.Namespace) -> int:
    """Build a datasets manifest from Open Data-style ROOT files; print its summary table."""
    import json

    from .opendata import build_manifest, summary_table

    roles = {}
    for item in args.role:
        key, sep, role = item.rpartition("=")
        if not sep or not key:
            raise TthAdvError(f"--role takes FILE_OR_DSID=ROLE, got {item!r}")
        roles[key] = role
    manifest = build_manifest(args.inputs, args.luminosity_pb, args.tree, roles)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(manifest, indent=2) + "\n")
    print(summary_table(manifest))
    print(f"manifest: {out}")
    return 0


def output_path(out: str) -> Path:
    """``--out`` as a file: a ``.coffea`` path as given, otherwise ``<folder>/output.coffea``."""
    path = Path(out)
    return path if path.suffix == ".coffea" else path / "output.coffea"


def cmd_run(args: argparse.Namespace) -> int:
    """Run the processor over a datasets manifest and save the histograms and cutflows."""
    from processors.workers import DEFAULT_WORKER_START, start_fork_server

    worker_start = args.worker_start or DEFAULT_WORKER_START
    local_dask = args.executor == "dask" and not args.scheduler and args.cluster == "local"
    if local_dask and worker_start == "forkserver":
        start_fork_server()  # its imports run while this command imports the analysis and checks inputs
    from processors.run import RunOptions, run_analysis, save_output, summary

    from .config import load_config
    from .manifest import load_manifest

    config = load_config(args.config)
    if args.categories:
        from .categorize import read_categories
        from .config import with_categories

        config = with_categories(config, read_categories(args.categories))
    manifest = load_manifest(args.datasets)
    if args.only:
        manifest = manifest.select(args.only)
    options = RunOptions(executor=args.executor, workers=args.workers, chunksize=args.chunksize,
                         align_clusters=not args.exact_chunks,
                         maxchunks=args.maxchunks, scheduler=args.scheduler, systematics=args.systematics,
                         dump_dir=args.dump_features, unblind=args.unblind, skip_bad_files=args.skip_bad_files,
                         progress=not args.no_progress, model_path=args.model, worker_start=worker_start)
    if args.cluster == "condor":
        output = _run_on_condor(manifest, config, options)
    else:
        output = run_analysis(manifest, config, options)
    path = save_output(output, output_path(args.out))
    print(summary(output))
    print(f"output: {path}")
    return 0


def _run_on_condor(manifest, config, options):
    """Run through an adaptive HTCondorCluster (dask-jobqueue); the model is shipped to the workers."""
    from distributed import Client

    from condor.cluster import htcondor_cluster, ship_model
    from processors.run import run_analysis

    options.executor = "dask"
    with htcondor_cluster(config.cluster) as cluster, Client(cluster) as client:
        if options.model_path:
            ship_model(client, options.model_path)
        options.client = client
        return run_analysis(manifest, config, options)


def cmd_condor_submit(args: argparse.Namespace) -> int:
    """Split the work into slices, write the HTCondor submission and submit it (or only write it)."""
    import json

    from condor.batch import PLAN, missing_slices, submit, write_submission

    from .config import load_config
    from .manifest import load_manifest

    config = load_config(args.config)
    out = Path(args.out)
    if args.resubmit_missing:
        plan = json.loads((out / PLAN).read_text())
        todo = missing_slices(out)
        if not todo:
            print(f"every slice of {out} has its partial output: nothing to resubmit")
            return 0
        path = write_submission(None, config, out, plan["n_slices"], only=todo, previous_plan=plan)
        print(f"resubmitting slices {todo}")
    else:
        if not args.datasets:
            raise TthAdvError("condor submit needs --datasets (or --resubmit-missing for an existing folder)")
        path = write_submission(load_manifest(args.datasets), config, out, args.jobs, chunksize=args.chunksize,
                                systematics=args.systematics, model=args.model)
    print(f"submit description: {path}")
    if not args.dry_run:
        print(submit(path))
    return 0


def cmd_condor_job(args: argparse.Namespace) -> int:
    """Process one slice of a plan (what each batch job runs)."""
    from condor.batch import run_slice

    print(run_slice(args.plan, int(args.slice), args.out))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    """Merge batch partial outputs; refuse missing or duplicated slices."""
    from condor.batch import merge_partials
    from processors.run import save_output, summary

    partials = sorted(Path(args.partials).glob("partial_*.coffea")) if Path(args.partials).is_dir() else \
        [Path(p) for p in args.partials.split(",")]
    merged = merge_partials(args.plan, partials)
    path = save_output(merged, output_path(args.out))
    print(summary(merged))
    print(f"merged output: {path}")
    return 0


def cmd_export_root(args: argparse.Namespace) -> int:
    """Write the m_yy histograms of a saved output to a ROOT file."""
    from processors.run import export_root, load_output

    path = export_root(load_output(output_path(args.input)), args.out)
    print(f"ROOT histograms: {path}")
    return 0


def cmd_categorize(args: argparse.Namespace) -> int:
    """Optimise score-category boundaries per channel for the combined expected significance."""
    from .categorize import categorize, write_categories
    from .config import load_config

    result = categorize(args.features, {"had": args.had, "lep": args.lep}, load_config(args.config).mass,
                        args.min_sideband)
    path = write_categories(result, args.out)
    for channel, bounds in result["categories"].items():
        z = result["details"][channel]["category_z"]
        fewer = result["fewer_than_requested"].get(channel)
        note = f"  ({fewer['found']} of the {fewer['requested']} asked for: the sidebands support no more)" if fewer else ""
        print(f"{channel}: boundaries {[round(b, 4) for b in bounds]}  Z per category {[round(x, 2) for x in z]}{note}")
    print(f"combined expected Z (counting, quadrature) {result['combined_z']:.2f} -> {path}")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    """Sideband fits, spurious-signal test, signal model, significance and the pyhf workspace."""
    from processors.run import load_output

    from .config import load_config
    from .fit_analysis import category_table, pyhf_summary, run_fits, write_fit_results
    from .workspace import build_workspace, compare_with_pyhf, write_workspace

    output = load_output(output_path(args.histograms))
    result = run_fits(output, load_config(args.config), unblind=args.unblind)
    spec = build_workspace(output, result, args.unblind)
    result["pyhf"] = compare_with_pyhf(result, spec)
    path = write_fit_results(result, args.out)
    workspace = write_workspace(spec, Path(args.out) / "workspace.json")
    print(category_table(result))
    print("\n".join(pyhf_summary(result)))
    print(f"fits: {path}\npyhf workspace: {workspace}")
    if args.strict and result["without_function"]:
        log.error("--strict: no acceptable background function in %s", ", ".join(result["without_function"]))
        return 1
    return 0


def training_runs(methods: list[str], lam: float, scan: list[float] | None) -> list[tuple[str, float]]:
    """(method, lambda) pairs: adversarial at each scanned lambda, the baselines once."""
    from training.methods import METHODS

    chosen = list(METHODS) if "all" in methods else methods
    runs = []
    for method in chosen:
        lambdas = (scan or [lam]) if method == "adversarial" else [0.0]
        runs += [(method, float(x)) for x in lambdas]
    return runs


def training_overrides(args: argparse.Namespace) -> dict:
    """Command-line overrides of the training configuration."""
    overrides: dict = {}
    if args.epochs is not None:
        overrides.setdefault("schedule", {})["epochs"] = args.epochs
    if args.folds is not None:
        overrides.setdefault("data", {})["n_folds"] = args.folds
    if args.layers is not None:
        overrides.setdefault("classifier", {})["layers"] = args.layers
    if args.feature_set is not None:
        overrides.setdefault("data", {})["feature_set"] = args.feature_set
    if args.background is not None:
        overrides.setdefault("data", {})["background"] = args.background
    return overrides


def cmd_train(args: argparse.Namespace) -> int:
    """Train the decorrelated classifier and baselines; export ONNX; write the Pareto table."""
    from training.config import load_training_config
    from training.run import run_training

    config = load_training_config(args.config, training_overrides(args))
    from .config import load_config

    summary = run_training(args.features, args.out, config, training_runs(args.method, args.lam, args.lambda_scan),
                           load_config(args.analysis_config), all_events=args.all_events, int8=args.int8)
    print(summary["table"])
    chosen = summary["chosen"]
    print(f"chosen: {chosen['method']} (lambda {chosen['lambda']:g}) -> {chosen['model']}  [{chosen['rule']}]")
    q = summary["int8"]
    if q and "refused" in q:
        print(f"no int8 model: {q['refused']}")
    elif q:
        print(f"int8 model: {Path(args.out) / 'model_int8.onnx'}  R50 {q['float']['r50']:.2f} -> {q['int8']['r50']:.2f}, "
              f"JSD50/floor {q['float']['ratio50']:.2f} -> {q['int8']['ratio50']:.2f}, 99% of scores within "
              f"{q['parity']['p99_abs_difference']:.2g} of the float model")
    print(f"out-of-fold scores of the training events: {summary['out_of_fold']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole chain on the default synthetic data, reusing finished stages."""
    import json

    from processors.run import load_output, summary

    from .demo import DemoSettings, model_chains, run_demo
    from .fit_analysis import category_table

    settings = DemoSettings(Path(args.out), args.events, args.seed, args.executor, args.workers,
                            progress=not args.no_progress)
    if args.quick:
        settings.training = {"classifier": {"layers": [32, 32]},
                             "schedule": {"pretrain_classifier_epochs": 1, "pretrain_adversary_epochs": 1,
                                          "epochs": 2, "patience": 2}}
        settings.had_categories, settings.lep_categories, settings.min_sideband = 2, 1, 5
        settings.oversample = {"yyjets": 2, "ttyy": 2}
    run_demo(settings)
    print(summary(load_output(settings.path("histograms") / "output.coffea")))
    training = json.loads((settings.path("model") / "results.json").read_text())
    print(training["table"])
    for label, suffix, _ in model_chains(settings):
        print(f"categories of the {label} classifier (out-of-fold scores):")
        print(category_table(json.loads((settings.path("fits" + suffix) / "fits.json").read_text())))
    print(f"report: {settings.path('report') / 'report.md'}")
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

    m = add("manifest", cmd_manifest, "build a datasets manifest from ROOT files named like the ATLAS Open Data "
            "13 TeV GamGam release (data_*.root, mc_<DSID>.*.root): roles from the packaged catalogue, "
            "cross-sections and sums of weights from the files")
    m.add_argument("inputs", nargs="+", help="folders (searched recursively), files or globs; root:// and https:// "
                   "paths are listed without being opened")
    m.add_argument("--out", required=True, help="manifest to write (JSON)")
    m.add_argument("--luminosity-pb", type=float, default=None,
                   help="integrated luminosity of the data in pb^-1 (needed with MC files)")
    m.add_argument("--tree", default="mini", help="tree name (default mini)")
    m.add_argument("--role", action="append", default=[], metavar="FILE_OR_DSID=ROLE",
                   help="the role (data, signal, resonant, continuum) of a DSID or file the catalogue lacks; repeatable")

    s = add("summary", cmd_summary, "summarise a datasets manifest: files, events, cross-sections, expected yields")
    s.add_argument("--datasets", required=True, help="datasets manifest (JSON/YAML)")

    r = add("run", cmd_run, "run the ttH(yy) processor: selection, regions, channels, histograms, cutflow")
    r.add_argument("--datasets", required=True, help="datasets manifest (JSON/YAML)")
    r.add_argument("--out", required=True, help="output file (.coffea) or folder (writes output.coffea there)")
    r.add_argument("--config", default=None, help="analysis configuration YAML overriding the defaults")
    r.add_argument("--executor", choices=["iterative", "futures", "dask"], default="iterative",
                   help="iterative (debugging), futures (local processes) or dask (LocalCluster or --scheduler)")
    r.add_argument("--workers", type=int, default=2, help="worker processes for futures/dask (default 2)")
    r.add_argument("--chunksize", type=int, default=100_000,
                   help="events per chunk, at least (default 100000): chunks end where every branch read starts a "
                        "new basket, so no basket is decompressed twice (--exact-chunks: exactly this size)")
    r.add_argument("--exact-chunks", action="store_true", help="cut chunks at exactly --chunksize events")
    r.add_argument("--maxchunks", type=int, default=None, help="at most this many chunks per dataset (testing)")
    r.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (tcp://host:port)")
    r.add_argument("--worker-start", choices=["forkserver", "spawn"], default=None,
                   help="how a Dask LocalCluster starts its workers: forkserver (Linux default: one server imports "
                        "the analysis, workers fork from it) or spawn (a fresh interpreter each; the default elsewhere)")
    r.add_argument("--systematics", choices=["none", "weights", "all"], default="none",
                   help="none; weights (scale-factor variations); all (plus energy-scale variations)")
    r.add_argument("--dump-features", default=None, metavar="DIR", help="write selected events' features to parquet")
    r.add_argument("--unblind", action="store_true", help="show data in the 120-130 GeV signal region")
    r.add_argument("--skip-bad-files", action="store_true",
                   help="skip unreadable files or files lacking branches (listed in the output); default: stop")
    r.add_argument("--only", nargs="+", default=None, metavar="DATASET", help="process only these datasets")
    r.add_argument("--model", default=None, help="ONNX model to score inside the processor (checked first)")
    r.add_argument("--cluster", choices=["local", "condor"], default="local",
                   help="with --executor dask: a LocalCluster (default) or an adaptive HTCondorCluster")
    r.add_argument("--categories", default=None, help="categories.json of 'tth-adv categorize' (needs --model)")

    cs = add("condor", lambda a: 0, "plain HTCondor batch: submit slices, run one slice")
    csub = cs.add_subparsers(dest="condor_command", required=True, metavar="ACTION")
    s1 = csub.add_parser("submit", help="split into slices, write job.sub and submit (or --dry-run)")
    s1.set_defaults(func=cmd_condor_submit)
    s1.add_argument("--datasets", help="datasets manifest")
    s1.add_argument("--jobs", type=int, default=10, help="number of slices/jobs (default 10)")
    s1.add_argument("--out", required=True, help="submit folder")
    s1.add_argument("--config", default=None, help="analysis configuration YAML")
    s1.add_argument("--chunksize", type=int, default=100_000, help="events per chunk (default 100000)")
    s1.add_argument("--systematics", choices=["none", "weights", "all"], default="none")
    s1.add_argument("--model", default=None, help="ONNX model to score")
    s1.add_argument("--dry-run", action="store_true", help="write the submission without submitting")
    s1.add_argument("--resubmit-missing", action="store_true", help="resubmit only slices without a partial output")
    s2 = csub.add_parser("job", help="process one slice (run by each batch job)")
    s2.set_defaults(func=cmd_condor_job)
    s2.add_argument("--plan", required=True, help="plan.json of the submit folder")
    s2.add_argument("--slice", required=True, help="slice number")
    s2.add_argument("--out", required=True, help="partial output to write")

    m = add("merge", cmd_merge, "merge batch partial outputs (refuses missing or duplicated slices)")
    m.add_argument("--plan", required=True, help="plan.json of the submit folder")
    m.add_argument("--partials", required=True, help="folder of partial_*.coffea, or a comma-separated list")
    m.add_argument("--out", required=True, help="merged output (.coffea file or folder)")

    e = add("export-root", cmd_export_root, "write the m_yy histograms of an output to a ROOT file")
    e.add_argument("--input", required=True, help="output of 'tth-adv run' (.coffea file or its folder)")
    e.add_argument("--out", required=True, help="ROOT file to write")

    t = add("train", cmd_train, "train the mass-decorrelated classifier (and baselines) on a feature dump; "
                                "export ONNX; print the rejection-vs-sculpting table")
    t.add_argument("--features", required=True, help="feature dump folder of 'tth-adv run --dump-features'")
    t.add_argument("--out", required=True, help="model folder: model.onnx (chosen), models/, results.json")
    t.add_argument("--method", nargs="+", default=["adversarial"],
                   choices=["adversarial", "classifier", "drop-correlated", "reweight", "disco", "ddt", "all"],
                   help="methods to train (default adversarial; 'all' for every method)")
    t.add_argument("--lambda", dest="lam", type=float, default=30.0, help="adversary strength (default 30)")
    t.add_argument("--lambda-scan", type=float, nargs="+", default=None, metavar="L",
                   help="train the adversarial method at each of these lambdas")
    t.add_argument("--config", default=None, help="training configuration YAML overriding training/defaults.yaml")
    t.add_argument("--epochs", type=int, default=None, help="adversarial/training epochs (override)")
    t.add_argument("--folds", type=int, default=None, help="k of the k-fold split by eventNumber (override)")
    t.add_argument("--layers", type=int, nargs="+", default=None, help="classifier hidden widths (override)")
    t.add_argument("--feature-set", default=None, help="feature set: seed, scaled or extended (override)")
    t.add_argument("--background", default=None, choices=["ntni_data", "mc", "both"], help="background sample")
    t.add_argument("--analysis-config", default=None,
                   help="analysis configuration YAML (its mass window bins the JSD figures)")
    t.add_argument("--int8", action="store_true",
                   help="also write model_int8.onnx: onnxruntime static int8 quantisation of the chosen model, "
                        "calibrated on training events, with its parity and R50/JSD against the float model")
    t.add_argument("--all-events", action="store_true",
                   help="also train the chosen method once on all events: model_all_events.onnx, for data no "
                        "fold has seen (it scores its own training events in-sample)")

    c = add("categorize", cmd_categorize, "optimise score categories (Had 1..N, Lep 1..M) for expected significance")
    c.add_argument("--features", required=True, help="feature dump of a run with --model (has the score)")
    c.add_argument("--out", required=True, help="categories.json to write")
    c.add_argument("--had", type=int, default=4, help="hadronic categories (default 4, as seed 000)")
    c.add_argument("--lep", type=int, default=3, help="leptonic categories (default 3, as seed 000)")
    c.add_argument("--min-sideband", type=int, default=10, help="minimum TI data sideband events per category")
    c.add_argument("--config", default=None, help="analysis configuration YAML (its mass window) used for the run")

    f = add("fit", cmd_fit, "sideband fits, spurious signal, signal model, significance; pyhf workspace")
    f.add_argument("--histograms", required=True, help="output of 'tth-adv run' (.coffea file or its folder)")
    f.add_argument("--out", required=True, help="folder for fits.json and workspace.json")
    f.add_argument("--unblind", action="store_true", help="fit the data in the signal region (default: Asimov)")
    f.add_argument("--strict", action="store_true",
                   help="exit non-zero when a category has no acceptable background function")
    f.add_argument("--config", default=None, help="analysis configuration YAML (its mass window) used for the run")

    d = add("demo", cmd_demo, "run the analysis chain on the embedded default synthetic data")
    d.add_argument("--out", default="tth-demo", help="output folder (default: tth-demo); reruns reuse it")
    d.add_argument("--events", type=int, default=DEMO_EVENTS, help=f"events to generate (default {DEMO_EVENTS})")
    d.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    d.add_argument("--executor", choices=["iterative", "futures", "dask"], default="futures",
                   help="executor for the processing stages (default futures)")
    d.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    d.add_argument("--quick", action="store_true", help="tiny network and few categories (for tests, not physics)")
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
