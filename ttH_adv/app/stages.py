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
          analysis: AnalysisConfig, all_events: bool = False, int8: bool = False, seeds: int = 1) -> dict:
    """k-fold training of every (method, lambda) in ``runs`` for ``seeds`` seeds (a method's lambda scan on the
    first, its chosen lambda on the others; ``training.run``); returns results.json's content."""
    from training.run import run_training

    return run_training(features, out, config, runs, analysis, all_events=all_events, int8=int8, seeds=seeds)


# --------------------------------------------------------------------------- categorize


def categorize(features: str | Path, out: str | Path, counts: dict[str, int], config: AnalysisConfig,
               min_sideband: int = 10, score_column: str = "score", events: Any = None) -> dict:
    """Score boundaries per channel maximising the expected significance; writes and returns categories.json
    (``events``: the dump's rows, read once for several models)."""
    from ..stats.categorize import categorize as optimise
    from ..stats.categorize import write_categories

    result = optimise(features, counts, config.mass, min_sideband, score_column, events)
    write_categories(result, out)
    return result


# --------------------------------------------------------------------------- fit


def fit(output: dict, out: str | Path, config: AnalysisConfig, unblind: bool = False, pyhf: bool = True,
        impacts: bool = True, light: bool = False) -> dict:
    """Every category's fits and the combination (with the nuisances' impacts), the pyhf workspace and (with
    ``pyhf``) its cross-check; writes OUT/fits.json and OUT/workspace.json and returns the fits.  ``light``:
    the significances without limits or profile-likelihood errors (``fit_analysis.analyse``)."""
    from ..output import MASS_HISTOGRAM
    from ..stats.fit_analysis import analyse, write_fit_results
    from ..stats.workspace import build_workspace, compare_with_pyhf, write_workspace

    result, models = analyse(output, config, unblind=unblind, impacts=impacts, light=light)
    spec = build_workspace(models, output["histograms"][MASS_HISTOGRAM].axes["mgg"].edges)
    result["pyhf"] = compare_with_pyhf(result, spec) if pyhf else {}
    write_fit_results(result, out)
    write_workspace(spec, Path(out) / "workspace.json")
    return result


# --------------------------------------------------------------------------- report


def report(out: str | Path, fits_by_model: dict[str, tuple[dict, dict]], training: dict, dump_dir: Path | None,
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
    table = read_comparison(comparison)["table"] if comparison else None
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
    """The scoring pass: one processor run scores every result's model into one dump."""
    import shutil

    from processors.tth import Scoring

    from ..stats.compare import compared

    shutil.rmtree(paths.scored, ignore_errors=True)  # a fresh dump, never mixed with an older one
    scorings = tuple(Scoring(r.label, str(r.model)) for r in compared(results))
    process(manifest, config, replace(options, scorings=scorings, dump_dir=str(paths.scored), model_path=None))
    return paths.scored


def compare_categorize(results: list, paths: ComparePaths, config: AnalysisConfig, counts: dict[str, int],
                       min_sideband: int) -> dict[str, dict]:
    """Each compared result's categories from its scores in the scoring pass's dump."""
    from ..output import labelled
    from ..stats.categorize import scored_events
    from ..stats.compare import compared

    results = compared(results)
    events = scored_events(paths.scored, [labelled("score", r.label) for r in results])
    return {r.label: categorize(paths.scored, paths.categories(r.label), counts, config, min_sideband,
                                labelled("score", r.label), events) for r in results}


def compare_fill(manifest: Manifest, results: list, paths: ComparePaths, config: AnalysisConfig,
                 options: Any) -> dict[str, Path]:
    """The categories pass: one processor run fills every result's categories, the Higgs samples with every
    systematic variation (the fits carry them as nuisance parameters); one output each."""
    from processors.tth import Scoring

    from ..output import save_output, split_by_scoring
    from ..stats.categorize import read_categories
    from ..stats.compare import compared

    scorings = tuple(Scoring(r.label, str(r.model), {c: tuple(b) for c, b in
                                                     read_categories(paths.categories(r.label)).items()})
                     for r in compared(results))
    # the variations of the samples the statistical model varies: the Higgs MC (the continuum MC enters nominal)
    output = process(manifest, config, replace(options, scorings=scorings, dump_dir=None, model_path=None,
                                               systematics="all", varied_roles=("signal", "resonant"))).output
    return {label: save_output(part, paths.histograms(label)) for label, part in split_by_scoring(output).items()}


def _fit_saved(histograms: Path, out: Path, config: AnalysisConfig, full: bool) -> dict:
    """``fit`` of a saved output (a process pool's task: paths in, fits out); ``full``: with the pyhf cross-check,
    the impacts and the limits, else the significances alone."""
    from ..output import load_output

    return fit(load_output(histograms), out, config, pyhf=full, impacts=full, light=not full)


def compare_fit(results: list, paths: ComparePaths, config: AnalysisConfig, workers: int = 1,
                full_for: set[str] | None = None) -> dict[str, dict]:
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


def compare_table(results: list, paths: ComparePaths) -> list[dict]:
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
            options: Any, counts: dict[str, int], min_sideband: int = 10) -> list[dict]:
    """Every trained result of the training folders through score -> categorize -> fill -> fit, then one table."""
    from ..stats.compare import trained_results

    results = trained_results(model_dirs)
    paths = ComparePaths(Path(out))
    compare_score(manifest, results, paths, config, options)
    compare_categorize(results, paths, config, counts, min_sideband)
    compare_fill(manifest, results, paths, config, options)
    compare_fit(results, paths, config, options.workers if options.executor != "iterative" else 1)
    return compare_table(results, paths)
