"""One function per stage of the analysis: the command line and the demo call these, and only these.

=============  ================================================================  ==========================
stage          what it does                                                      writes
=============  ================================================================  ==========================
``process``    the processor over a manifest (any executor, a model, categories)  OUT/output.zip, a dump
``train``      k-fold training of methods and lambdas, ONNX export                MODELDIR/
``categorize`` score boundaries per channel from a scored dump                    categories.json
``fit``        templates, spurious signal, function choice, bias, Z, mu_95, pyhf  fits.json, workspace.json
``report``     plots and report.md of fitted outputs                              OUT/report.md, *.png/pdf
``compare``    every trained result through score -> categorize -> fill -> fit,   comparison.md/json
               the processor passes shared by all models
=============  ================================================================  ==========================

Each takes typed inputs and returns what it made; none parses arguments or prints.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import AnalysisConfig
from ..errors import TthAdvError
from ..inputs.manifest import Manifest
from ..output import OUTPUT_FILE
from ..stats.fit_results import FitResult

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- process


@dataclass(frozen=True)
class Processed:
    output: dict       # histograms, cutflow, metadata
    path: Path | None  # where it was saved (None: not saved)


@contextmanager
def _condor_client(config: AnalysisConfig, options: Any) -> Iterator[Any]:
    """A Dask client on an adaptive HTCondorCluster (dask-jobqueue), the model shipped to its workers."""
    from distributed import Client

    from condor.cluster import htcondor_cluster, ship_model

    with htcondor_cluster(config.cluster) as cluster, Client(cluster) as client:
        for path in [options.model_path, *(s.model_path for s in options.scorings)]:
            if path:
                ship_model(client, path)
        yield client


def process(manifest: Manifest, config: AnalysisConfig, options: Any, out: str | Path | None = None,
            cluster: str = "local") -> Processed:
    """Run the processor over a manifest (``processors.run.RunOptions``); save the output to ``out`` if given.

    ``cluster="condor"`` runs on Dask workers of an adaptive HTCondor cluster.
    """
    from processors.run import run_analysis

    from ..output import save_output

    if cluster == "condor":
        with _condor_client(config, options) as client:
            output = run_analysis(manifest, config, replace(options, executor="dask", client=client))
    else:
        output = run_analysis(manifest, config, options)
    return Processed(output, save_output(output, out) if out is not None else None)


# --------------------------------------------------------------------------- train


def train(features: str | Path, out: str | Path, config: Any, runs: list[tuple[str, float]],
          analysis: AnalysisConfig, all_events: bool = False, int8: bool = False, seeds: int = 1) -> Any:
    """k-fold training of every (method, lambda) in ``runs`` for ``seeds`` seeds (a method's lambda scan on the
    first, its chosen lambda on the others; ``training.run``); returns results.json's content
    (``ttH_adv.stats.training_results.TrainingSummary``)."""
    from training.run import run_training

    return run_training(features, out, config, runs, analysis, all_events=all_events, int8=int8, seeds=seeds)


# --------------------------------------------------------------------------- categorize


def categorize(features: str | Path, out: str | Path, counts: dict[str, int], config: AnalysisConfig,
               min_sideband: int = 10, score_column: str = "score", events: Any = None, inclusive: Any = None
               ) -> dict:
    """Score boundaries per channel maximising the expected significance; writes and returns categories.json
    (``events``: the dump's rows, and ``inclusive`` their inclusive template ingredients, read once for several
    models)."""
    from ..stats.categorize import categorize as optimise
    from ..stats.categorize import write_categories

    result = optimise(features, counts, config.mass, min_sideband, score_column, events, config.fits, inclusive)
    write_categories(result, out)
    return result


# --------------------------------------------------------------------------- fit


def fit(output: dict, out: str | Path, config: AnalysisConfig, unblind: bool = False, pyhf: bool = True,
        impacts: bool = True, light: bool = False) -> FitResult:
    """Every category's fits and the combination (with the nuisances' impacts), the pyhf workspace and (with
    ``pyhf``) its cross-check; writes OUT/fits.json and OUT/workspace.json and returns the fits.  ``light``:
    the significances without limits or profile-likelihood errors (``fit_analysis.analyse``)."""
    from ..output import MASS_HISTOGRAM
    from ..stats.fit_analysis import analyse, write_fit_results
    from ..stats.workspace import build_workspace, compare_with_pyhf, write_workspace

    result, models = analyse(output, config, unblind=unblind, impacts=impacts, light=light)
    spec = build_workspace(models, output["histograms"][MASS_HISTOGRAM].axes["mgg"].edges)
    result.pyhf = compare_with_pyhf(result, spec) if pyhf else None
    write_fit_results(result, out)
    write_workspace(spec, Path(out) / "workspace.json")
    return result


# --------------------------------------------------------------------------- report


def report(out: str | Path, fits_by_model: dict[str, tuple[dict, FitResult]], training: Any, dump_dir: Path | None,
           config: AnalysisConfig, comparison: list[dict] | None = None, score_column: str = "score") -> Path:
    """Plots and report.md of fitted outputs ({label: (output, fits)}), a comparison table first if given."""
    from ..report.plotting import write_report

    return write_report(Path(out), fits_by_model, training, dump_dir, config.mass, comparison, score_column)


def report_saved(out: str | Path, histograms: list[str], fits: list[str], labels: list[str] | None,
                 training: list[str], features: str | None, comparison: str | None, config_path: str | None,
                 score_column: str = "score", allow_pickle: bool = False) -> Path:
    """``report`` of saved folders: each output paired with its fits folder, in the configuration they carry."""
    from ..output import carried_config, load_output, output_path
    from ..report.plotting import load_training_results
    from ..stats.compare import read_comparison
    from ..stats.fit_analysis import read_fit_results

    if len(histograms) != len(fits):
        raise TthAdvError(f"--histograms and --fits pair up: got {len(histograms)} and {len(fits)}")
    labels = labels or [Path(f).name for f in fits]
    if len(labels) != len(fits):
        raise TthAdvError(f"--labels names each --fits folder: got {len(labels)} labels for {len(fits)}")
    fits_by_model = {label: (load_output(output_path(h), allow_pickle), read_fit_results(f))
                     for label, h, f in zip(labels, histograms, fits, strict=True)}
    table = read_comparison(comparison).table if comparison else None
    first_label, (first_output, _) = next(iter(fits_by_model.items()))
    config = carried_config(first_output["metadata"].get("config"), config_path, f"the output of {first_label}")
    return report(out, fits_by_model, load_training_results(*training), features and Path(features), config, table,
                  score_column)


def merge(out: str | Path, plan: str | None, partials: str | None, outputs: list[str] | None,
          allow_pickle: bool = False) -> tuple[dict, Path]:
    """Batch partials merged by their plan, or outputs of separate runs added; saved to ``out``."""
    from ..output import load_output, merge_outputs, output_path, save_output

    if (outputs is None) == (plan is None or partials is None):
        raise TthAdvError("merge takes either --plan and --partials (a batch) or --outputs (separate runs)")
    if outputs is not None:
        merged = merge_outputs([load_output(output_path(o), allow_pickle) for o in outputs], list(outputs))
    else:
        from condor.batch import merge_partials

        files = sorted(Path(partials).glob("partial_*.zip")) if Path(partials).is_dir() else \
            [Path(p) for p in partials.split(",")]
        merged = merge_partials(plan, files)
    return merged, save_output(merged, output_path(out, write=True))


# --------------------------------------------------------------------------- compare


@dataclass(frozen=True)
class ComparePaths:
    """Where a comparison keeps its parts (OUT/...)."""

    out: Path

    @property
    def scored(self) -> Path:
        """The dump of the scoring pass: every model's score, ``score@<label>``."""
        return self.out / "scored_features"

    def categories(self, label: str) -> Path:
        """A result's categories.json."""
        return self.out / label / "categories.json"

    def histograms(self, label: str) -> Path:
        """A result's output of the categories pass (the fit's input)."""
        return self.out / label / OUTPUT_FILE

    def fits(self, label: str) -> Path:
        """A result's fits folder (fits.json, workspace.json)."""
        return self.out / label / "fits"


def compare_score(manifest: Manifest, results: list, paths: ComparePaths, config: AnalysisConfig,
                  options: Any) -> Path:
    """The scoring pass: one processor run scores every result's model into one dump (nominal: what categorize
    reads)."""
    import shutil

    from processors.tth import Scoring

    from ..stats.compare import compared

    shutil.rmtree(paths.scored, ignore_errors=True)  # a fresh dump, never mixed with an older one
    scorings = tuple(Scoring(r.label, str(r.model)) for r in compared(results))
    process(manifest, config, replace(options, scorings=scorings, dump_dir=str(paths.scored), model_path=None,
                                      systematics="none"))
    return paths.scored


def compare_categorize(results: list, paths: ComparePaths, config: AnalysisConfig, counts: dict[str, int],
                       min_sideband: int) -> dict[str, dict]:
    """Each compared result's categories from its scores in the scoring pass's dump."""
    from ..output import labelled
    from ..stats.categorize import inclusive_components, scored_events
    from ..stats.compare import compared

    results = compared(results)
    events = scored_events(paths.scored, [labelled("score", r.label) for r in results])
    inclusive = inclusive_components(events, config.mass.edges())
    return {r.label: categorize(paths.scored, paths.categories(r.label), counts, config, min_sideband,
                                labelled("score", r.label), events, inclusive) for r in results}


def compare_fill(manifest: Manifest, results: list, paths: ComparePaths, config: AnalysisConfig,
                 options: Any) -> dict[str, Path]:
    """The categories pass: one processor run fills every result's categories, the Higgs samples with the
    variations of ``options.systematics`` (the fits carry them as nuisance parameters); one output each."""
    from processors.tth import Scoring

    from ..output import save_output, split_by_scoring
    from ..stats.categorize import read_categories
    from ..stats.compare import compared

    scorings = tuple(Scoring(r.label, str(r.model), {c: tuple(b) for c, b in
                                                     read_categories(paths.categories(r.label)).items()})
                     for r in compared(results))
    # the variations of the samples the statistical model varies: the Higgs MC (the continuum MC enters nominal)
    output = process(manifest, config, replace(options, scorings=scorings, dump_dir=None, model_path=None,
                                               varied_roles=("signal", "resonant"))).output
    return {label: save_output(part, paths.histograms(label)) for label, part in split_by_scoring(output).items()}


def _fit_saved(histograms: Path, out: Path, config: AnalysisConfig, full: bool) -> FitResult:
    """``fit`` of a saved output (a process pool's task: paths in, fits out); ``full``: with the pyhf cross-check,
    the impacts and the limits, else the significances alone."""
    from ..output import load_output

    return fit(load_output(histograms), out, config, pyhf=full, impacts=full, light=not full)


def compare_fit(results: list, paths: ComparePaths, config: AnalysisConfig, workers: int = 1,
                full_for: set[str] | None = None) -> dict[str, FitResult]:
    """Each compared result's fits, on ``workers`` processes (spawned: the caller may hold TensorFlow's threads): in
    full (the pyhf cross-check, impacts, limits) for the results in ``full_for`` (by default each row's first
    seed), the significances alone for the others (what the rows' spreads need)."""
    from ..stats.compare import compared

    results = compared(results)
    first = {r.label for r in results if r.seed == min(o.seed for o in results if o.row_key == r.row_key)}
    full_for = first if full_for is None else full_for
    # the full fits first: the longest tasks start early on the pool
    ordered = sorted(results, key=lambda r: r.label not in full_for)
    jobs = {r.label: (paths.histograms(r.label), paths.fits(r.label), config, r.label in full_for) for r in ordered}
    if workers <= 1:
        return {label: _fit_saved(*job) for label, job in jobs.items()}
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {label: pool.submit(_fit_saved, *job) for label, job in jobs.items()}
        return {label: future.result() for label, future in futures.items()}


def compare_table(results: list, paths: ComparePaths) -> list:
    """The comparison table from the fits and categories on disk; writes comparison.json and comparison.md."""
    from ..stats.categorize import read_categories_file
    from ..stats.compare import compared, comparison_row, write_comparison
    from ..stats.fit_analysis import read_fit_results

    rows = [comparison_row(r, results, read_fit_results(paths.fits(r.label)),
                           read_categories_file(paths.categories(r.label)))
            for r in compared(results)]
    write_comparison(rows, paths.out, results)
    return rows


def compare(manifest: Manifest, model_dirs: list[str | Path], out: str | Path, config: AnalysisConfig,
            options: Any, counts: dict[str, int], min_sideband: int = 10) -> list:
    """Every trained result of the training folders through score -> categorize -> fill -> fit, then one table's
    per-seed rows (``compare.ComparisonRow``)."""
    from processors.run import dataset_formats

    from ..event.systematics import variations
    from ..stats.compare import trained_results

    results = trained_results(model_dirs)
    # the fill pass's inputs checked before the scoring and categorising passes spend their time
    dataset_formats(manifest, config, variations(config, options.systematics))
    paths = ComparePaths(Path(out))
    compare_score(manifest, results, paths, config, options)
    compare_categorize(results, paths, config, counts, min_sideband)
    compare_fill(manifest, results, paths, config, options)
    compare_fit(results, paths, config, options.workers if options.executor != "iterative" else 1)
    return compare_table(results, paths)


# --------------------------------------------------------------------------- the commands
# Each ``tth-adv`` command is one call of these: saved files in, what it made out (``tests/test_cli.py``).


def generate(out: str | Path, events: int, seed: int, files_per_sample: int | None = None,
             samples: list[str] | None = None, progress: bool = True, format_name: str = "opendata2020",
             mismodel: bool = False) -> Path:
    """Synthetic Run-2 ntuples and their datasets manifest (its path); ``mismodel``: data made with a detector that
    differs from the simulated one (``generator.DATA_MISMODELLING``)."""
    from ..inputs.generator import AGREEING, DATA_MISMODELLING, generate_dataset

    return generate_dataset(out, events, seed, files_per_sample=files_per_sample, samples=samples,
                            show_progress=progress, format_name=format_name,
                            mismodelling=DATA_MISMODELLING if mismodel else AGREEING)


def make_manifest(inputs: list[str], out: str | Path, luminosity_pb: float | None, roles: dict[str, str],
                  format_name: str | None, xsecs: dict[int, float], catalogues: tuple[str, ...],
                  config_path: str | None) -> tuple[dict, Path]:
    """A datasets manifest of real files, written to ``out``: (the manifest, its path)."""
    from ..config import load_config
    from ..inputs.manifest import save_manifest
    from ..inputs.opendata import build_manifest

    manifest = build_manifest(inputs, luminosity_pb, roles, format_name=format_name, xsecs=xsecs,
                              catalogues=catalogues, config=load_config(config_path))
    return manifest, save_manifest(manifest, out)


def summarise(datasets: str | Path, config_path: str | None) -> str:
    """A one-screen summary of a datasets manifest."""
    from ..config import load_config
    from ..report.summary import summarise_manifest

    return summarise_manifest(datasets, load_config(config_path))


def process_files(datasets: str | Path, out: str | Path, config_path: str | None, options: Any,
                  categories: str | None = None, only: list[str] | None = None, cluster: str = "local") -> Processed:
    """``process`` of a manifest file, in a configuration file with a categories.json's boundaries if given."""
    from ..config import load_config, with_categories
    from ..inputs.manifest import load_manifest
    from ..output import output_path
    from ..stats.categorize import read_categories

    config = load_config(config_path)
    if categories:
        config = with_categories(config, read_categories(categories))
    manifest = load_manifest(datasets)
    return process(manifest.select(only) if only else manifest, config, options, output_path(out, write=True),
                   cluster=cluster)


@dataclass(frozen=True)
class Submission:
    """What ``condor submit`` wrote and did."""

    path: Path | None            # the submit description (None: every slice has its output)
    slices: list[int] | None     # the slices resubmitted (None: a new submission)
    submitted: str | None        # condor_submit's answer (None: --dry-run, or nothing to do)


def condor_submit(out: str | Path, config_path: str | None, datasets: str | None, jobs: int, chunksize: int,
                  systematics: str, model: str | None, resubmit_missing: bool = False,
                  dry_run: bool = False) -> Submission:
    """Split the work into slices and write the HTCondor submission (or one of the missing slices); submit it."""
    from condor.batch import resubmit_missing as missing_submission
    from condor.batch import submit, write_submission

    from ..config import load_config
    from ..inputs.manifest import load_manifest

    config, todo = load_config(config_path), None
    if resubmit_missing:
        path, todo = missing_submission(Path(out), config)
        if path is None:
            return Submission(None, [], None)
    elif not datasets:
        raise TthAdvError("condor submit needs --datasets (or --resubmit-missing for an existing folder)")
    else:
        path = write_submission(load_manifest(datasets), config, Path(out), jobs, chunksize=chunksize,
                                systematics=systematics, model=model)
    return Submission(path, todo, None if dry_run else submit(path))


def condor_job(plan: str | Path, slice_id: int, out: str | Path) -> Path:
    """One slice of a plan (what each batch job runs): its partial output."""
    from condor.batch import run_slice

    return run_slice(plan, slice_id, out)


def export_root(histograms: str | Path, out: str | Path, allow_pickle: bool = False) -> Path:
    """The m_yy histograms of a saved output as a ROOT file."""
    from ..output import export_root as write_root
    from ..output import load_output, output_path

    return write_root(load_output(output_path(histograms), allow_pickle), out)


def training_runs(methods: list[str], lam: float | None, scan: list[float] | None,
                  defaults: dict[str, float]) -> list[tuple[str, float]]:
    """(method, lambda) pairs: a lambda-taking method at each scanned lambda (or ``lam``, or its default in
    the training configuration's ``lambdas``), the others once; ``all`` is every registered method."""
    from training.registry import METHODS, method_spec

    runs = []
    for method in list(METHODS) if "all" in methods else methods:
        if not method_spec(method).takes_lambda:
            runs.append((method, 0.0))
            continue
        if not scan and lam is None and method not in defaults:
            raise TthAdvError(f"method {method!r} takes lambda: give --lambda, or set lambdas.{method} in the "
                              "training configuration")
        runs += [(method, float(x)) for x in scan or [lam if lam is not None else defaults[method]]]
    return runs


def training_overrides(epochs: int | None = None, folds: int | None = None, layers: list[int] | None = None,
                       feature_set: str | None = None, background: str | None = None) -> dict:
    """The training configuration's entries a command line sets (None: the configuration's own)."""
    entries = {("schedule", "epochs"): epochs, ("data", "n_folds"): folds, ("classifier", "layers"): layers,
               ("data", "feature_set"): feature_set, ("data", "background"): background}
    overrides: dict = {}
    for (section, key), value in entries.items():
        if value is not None:
            overrides.setdefault(section, {})[key] = value
    return overrides


def train_files(features: str | Path, out: str | Path, config_path: str | None, methods: list[str],
                lam: float | None = None, scan: list[float] | None = None, analysis_path: str | None = None,
                overrides: dict | None = None, all_events: bool = False, int8: bool = False, seeds: int = 1) -> Any:
    """``train`` of a feature dump, in a training configuration file with ``overrides`` (``training_overrides``'s
    arguments: epochs, folds, layers, feature_set, background) and the analysis configuration the dump carries."""
    from training.config import load_training_config

    from ..dump import dump_config
    from ..output import carried_config

    config = load_training_config(config_path, training_overrides(**(overrides or {})))
    runs = training_runs(methods, lam, scan, config.lambdas)
    analysis = carried_config(dump_config(features), analysis_path, f"feature dump {features}")
    return train(features, out, config, runs, analysis, all_events=all_events, int8=int8, seeds=seeds)


def categorize_files(features: str | Path, out: str | Path, counts: dict[str, int], config_path: str | None,
                     min_sideband: int = 10) -> dict:
    """``categorize`` of a scored feature dump, in the configuration it carries."""
    from ..dump import dump_config
    from ..output import carried_config

    config = carried_config(dump_config(features), config_path, f"feature dump {features}")
    return categorize(features, out, counts, config, min_sideband)


def fit_files(histograms: str | Path, out: str | Path, config_path: str | None, unblind: bool = False,
              allow_pickle: bool = False) -> dict:
    """``fit`` of a saved output, in the configuration it carries."""
    from ..output import carried_config, load_output, output_path

    path = output_path(histograms)
    output = load_output(path, allow_pickle)
    return fit(output, out, carried_config(output["metadata"].get("config"), config_path, path), unblind)


def compare_files(datasets: str | Path, model_dirs: list[str], out: str | Path, config_path: str | None,
                  options: Any, counts: dict[str, int], min_sideband: int = 10) -> list:
    """``compare`` of a manifest file and training folders; returns the table (mean +/- sd over seeds,
    ``compare.TableRow``)."""
    from ..config import load_config
    from ..inputs.manifest import load_manifest
    from ..stats.compare import aggregate

    return aggregate(compare(load_manifest(datasets), model_dirs, out, load_config(config_path), options, counts,
                             min_sideband))

