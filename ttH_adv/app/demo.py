"""``tth-adv demo``: the whole analysis chain on the embedded default (synthetic) data.

Stages (each reused when its inputs are unchanged, see ``ttH_adv.app.pipeline``), each a call of a
``ttH_adv.app.stages`` function:

1. ``generate``         synthetic Run-2 ntuples and ``datasets.json``, the       -> OUT/ntuples
                        continuum MC oversampled for the background templates
2. ``process``          processor + feature dump, no model                      -> OUT/features
3. ``train``            per feature set (seed, extended) the unconstrained     -> OUT/model, OUT/model_extended,
                        classifier, drop-correlated and the adversary, its        OUT/model_multiclass
                        lambda scanned on the first seed and chosen by the
                        flatness target; on the extended features the
                        multi-class adversary too; three seeds each, k-fold;
                        each folder on a process of its own
4. ``compare_score``    one processor pass scoring every trained model          -> OUT/compare/scored_features
5. ``compare_categorize`` each model's score categories                         -> OUT/compare/<result>/categories.json
6. ``compare_fill``     one processor pass filling every model's categories     -> OUT/compare/<result>/output.zip
7. ``compare_fit``      templates, spurious signal, function choice, bias,      -> OUT/compare/<result>/fits
                        Z with and without the modelling uncertainty, pyhf
8. ``compare_table``    the methods side by side in the final metric            -> OUT/compare/comparison.md
9. ``report``           the table, the decorrelated and the unconstrained       -> OUT/report
                        model's categories side by side, plots

Every score is out-of-fold: the exported models hold both fold networks and score each event
with the one that did not train on it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..config import PROCESSING
from ..output import OUTPUT_FILE
from .pipeline import Stage, run_stages

DEMO_EVENTS = 1_000_000
DEMO_EXECUTOR = "futures"  # the demo runs its processing passes on local processes
# The default 3x128 network, pinned so that the demo's time does not follow training/defaults.yaml, and short
# schedules, so that three seeds of every method train in two or three minutes on 2 cores.  Early stopping after
# 4 epochs without a better one.
DEMO_TRAINING = {"classifier": {"layers": [128, 128, 128], "dropout": 0.1},
                 "schedule": {"pretrain_classifier_epochs": 6, "pretrain_adversary_epochs": 3, "epochs": 12,
                              "patience": 4}}
# The adversary's lambdas, scanned on the first seed; the flatness target (training selection) chooses one.
DEMO_LAMBDAS = (10.0, 100.0)
DEMO_SEEDS = 3
# What the demo trains, per feature set (one training folder each): the unconstrained classifier (whose
# networks, made flat, are the ceiling), ATLAS's practice of dropping the m_yy-correlated features, and the
# adversarial model; on the seed features and on those ATLAS's ttH(yy) BDT uses on top (b-tags, leptons,
# MET, H_T).  On the extended features also the three-class network (ttH, single Higgs, continuum) with the
# adversary on its continuum events.
DEMO_METHODS = [("classifier", 0.0), ("drop-correlated", 0.0), *(("adversarial", lam) for lam in DEMO_LAMBDAS)]
# Each training folder trains on a process of its own (the multi-class one beside the extended one: the three share
# the two cores, where two folders would leave one core idle while the longer finishes).
DEMO_MULTICLASS = [("multiclass-adversarial", lam) for lam in DEMO_LAMBDAS]
DEMO_TRAININGS: dict[str, tuple[str, list[tuple[str, float]]]] = {
    "seed": ("seed", DEMO_METHODS), "extended": ("extended", DEMO_METHODS), "multiclass": ("extended", DEMO_MULTICLASS)}
# More continuum yy MC than the sample shares give, for the templates' yy part (same model, same luminosity;
# docs/fits.md "Templates").
DEMO_OVERSAMPLE = {"yyjets": 15, "ttyy": 5}


@dataclass
class DemoSettings:
    out: Path
    events: int = DEMO_EVENTS
    seed: int = 1
    executor: str = DEMO_EXECUTOR
    workers: int = PROCESSING.workers
    progress: bool = True
    format: str = "opendata2020"  # the input format the generator writes (ttH_adv.inputs.ntuple_formats)
    training: dict = field(default_factory=lambda: dict(DEMO_TRAINING))
    # training folder -> (feature set, the (method, lambda) runs it trains)
    trainings: dict[str, tuple[str, list[tuple[str, float]]]] = field(default_factory=lambda: dict(DEMO_TRAININGS))
    seeds: int = DEMO_SEEDS
    had_categories: int = 4
    lep_categories: int = 3
    min_sideband: int = 10
    oversample: dict = field(default_factory=lambda: dict(DEMO_OVERSAMPLE))

    @property
    def manifest(self) -> Path:
        return self.out / "ntuples" / "datasets.json"

    @property
    def counts(self) -> dict[str, int]:
        """Score categories asked for per channel."""
        return {"had": self.had_categories, "lep": self.lep_categories}

    def path(self, name: str) -> Path:
        """A stage output under OUT."""
        return self.out / name

    def model_dir(self, name: str) -> Path:
        """A training folder: OUT/model for the seed features', OUT/model_<name> for the others."""
        return self.path("model" if name == "seed" else f"model_{name}")


def quick_settings(s: DemoSettings) -> DemoSettings:
    """Tiny networks, few categories, little oversampling: the whole chain in a few minutes (tests, not physics)."""
    return replace(s, training={"classifier": {"layers": [32, 32]},
                                "schedule": {"pretrain_classifier_epochs": 1, "pretrain_adversary_epochs": 1,
                                             "epochs": 2, "patience": 2}},
                   had_categories=2, lep_categories=1, min_sideband=5, oversample={"yyjets": 2, "ttyy": 2}, seeds=2,
                   trainings={"seed": ("seed", [("classifier", 0.0), ("adversarial", 10.0), ("adversarial", 30.0)]),
                              "extended": ("extended", [("classifier", 0.0), ("drop-correlated", 0.0)]),
                              "multiclass": ("extended", [("multiclass-adversarial", 10.0)])})


def _options(s: DemoSettings, **fields):
    from processors.run import RunOptions

    return RunOptions(executor=s.executor, workers=s.workers, progress=s.progress, **fields)


def _config():
    from ..config import load_config

    return load_config()


def _manifest(s: DemoSettings):
    from ..inputs.manifest import load_manifest

    return load_manifest(s.manifest)


def _generate(s: DemoSettings) -> None:
    from ..inputs.generator import generate_dataset

    generate_dataset(s.manifest.parent, s.events, s.seed, show_progress=s.progress, oversample=s.oversample,
                     format_name=s.format)


def _process(s: DemoSettings) -> None:
    from . import stages

    shutil.rmtree(s.path("features"), ignore_errors=True)  # a fresh dump, never mixed with an older one
    stages.process(_manifest(s), _config(), _options(s, dump_dir=str(s.path("features"))),
                   s.path("plain") / OUTPUT_FILE)


def _train(s: DemoSettings, name: str) -> None:
    from training.config import load_training_config

    from . import stages

    feature_set, runs = s.trainings[name]
    config = load_training_config(overrides={**s.training, "data": {"feature_set": feature_set}})
    stages.train(s.path("features"), s.model_dir(name), config, runs, _config(), seeds=s.seeds)


def _train_in_process(s: DemoSettings, name: str) -> None:
    """``_train`` in a worker process of its own, TensorFlow on one thread (the folders share the cores)."""
    from training.models import tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    _train(s, name)


def _train_all(s: DemoSettings) -> None:
    """Every training folder, each on a process of its own, all at once (with more than one worker)."""
    names = list(s.trainings)
    if s.workers <= 1 or len(names) == 1:
        for name in names:
            _train(s, name)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(len(names), mp_context=multiprocessing.get_context("spawn")) as pool:
        for done in [pool.submit(_train_in_process, s, name) for name in names]:
            done.result()


def _results(s: DemoSettings) -> list:
    from ..stats.compare import trained_results

    return trained_results([s.model_dir(name) for name in s.trainings])


def _comparison(s: DemoSettings):
    from .stages import ComparePaths

    return ComparePaths(s.path("compare"))


def shown_results(s: DemoSettings) -> dict[str, str]:
    """The results the report shows category by category: the comparison's best row and the unconstrained classifier
    on the seed features, each at the row's first seed."""
    from ..stats.compare import read_comparison

    comparison = read_comparison(_comparison(s).out)
    table = comparison.table

    def label(entry) -> str:  # the result of the row's first seed, as the comparison names it
        return next(r.label for r in comparison.rows if r.seed == entry.seeds[0]
                    and (r.feature_set, r.method, r.lam) == (entry.feature_set, entry.method, entry.lam))

    unconstrained = next(r for r in table if r.unconstrained and r.feature_set == "seed")
    best = table[0] if table[0] is not unconstrained else table[1]
    return {"best": label(best), "unconstrained": label(unconstrained)}


def _report(s: DemoSettings) -> None:
    from ..output import labelled
    from . import stages

    paths = _comparison(s)
    shown = shown_results(s)
    stages.report_saved(s.path("report"), [str(paths.histograms(r)) for r in shown.values()],
                        [str(paths.fits(r)) for r in shown.values()], list(shown),
                        [str(s.model_dir(name)) for name in s.trainings], str(paths.scored), str(paths.out), None,
                        labelled("score", shown["best"]))


def demo_stages(s: DemoSettings) -> list[Stage]:
    """The demo's stages in order."""
    from . import stages

    p, paths = s.path, _comparison(s)
    models = [s.model_dir(name) / "results.json" for name in s.trainings]
    chain = [
        Stage("generate", {"events": s.events, "seed": s.seed, "oversample": s.oversample, "format": s.format}, [],
              [s.manifest],
              lambda: _generate(s)),
        Stage("process", {}, [s.manifest.parent], [p("features"), p("plain") / OUTPUT_FILE], lambda: _process(s)),
    ]
    chain.append(Stage("train", {"training": s.training, "runs": s.trainings, "seeds": s.seeds}, [p("features")],
                       models, lambda: _train_all(s)))
    counts = {**s.counts, "min_sideband": s.min_sideband}
    chain += [
        Stage("compare_score", {}, [s.manifest.parent, *models], [paths.scored],
              lambda: stages.compare_score(_manifest(s), _results(s), paths, _config(), _options(s))),
        Stage("compare_categorize", counts, [paths.scored], [paths.out / "categories.done"],
              lambda: _mark(paths.out / "categories.done", stages.compare_categorize(
                  _results(s), paths, _config(), s.counts, s.min_sideband))),
        Stage("compare_fill", {}, [s.manifest.parent, paths.out / "categories.done"], [paths.out / "filled.done"],
              lambda: _mark(paths.out / "filled.done", stages.compare_fill(_manifest(s), _results(s), paths, _config(),
                                                                           _options(s, systematics="all")))),
        Stage("compare_fit", {}, [paths.out / "filled.done"], [paths.out / "fitted.done"],
              lambda: _mark(paths.out / "fitted.done", stages.compare_fit(_results(s), paths, _config(), s.workers))),
        Stage("compare_table", {}, [paths.out / "fitted.done"], [paths.out / "comparison.md"],
              lambda: stages.compare_table(_results(s), paths)),
        Stage("report", {}, [paths.out / "comparison.md", *models], [p("report") / "report.md"], lambda: _report(s)),
    ]
    return chain


def _mark(path: Path, done: dict) -> None:
    """A stage's completion record, the results it made (the next stage's fingerprinted input)."""
    import json

    from ..atomic import write_text

    write_text(path, json.dumps(sorted(done)) + "\n")


def run_demo(s: DemoSettings) -> dict[str, str]:
    """Run (or continue) the demo; returns each stage's status."""
    s.out.mkdir(parents=True, exist_ok=True)
    return run_stages(s.out, demo_stages(s))


def demo_summary(s: DemoSettings) -> str:
    """What the demo shows, as text: processing, training tables, the comparison, where the report is."""
    from ..output import load_output, summary
    from ..stats.compare import (
        comparison_markdown,
        comparison_summary,
        read_comparison,
        read_training_summary,
    )
    from ..stats.fit_analysis import category_table, read_fit_results

    paths = _comparison(s)
    lines = [summary(load_output(s.path("plain") / OUTPUT_FILE))]
    for name, (feature_set, _) in s.trainings.items():
        lines += [f"training {s.model_dir(name).name}, {feature_set} features:",
                  read_training_summary(s.model_dir(name)).table]
    for label, result in shown_results(s).items():
        lines += [f"categories of the {label} classifier ({result}, out-of-fold scores):",
                  category_table(read_fit_results(paths.fits(result)))]
    table = read_comparison(paths.out).table
    lines += ["methods side by side (mean ± sd over seeds):", *comparison_markdown(table), comparison_summary(table),
              f"report: {s.path('report') / 'report.md'}"]
    return "\n".join(lines)


def run_command(out: str | Path, events: int, seed: int, executor: str, workers: int, progress: bool = True,
         format_name: str = "opendata2020", quick: bool = False) -> str:
    """``tth-adv demo``: the whole chain on generated data, reusing finished stages; returns its summary."""
    from ..inputs.ntuple_formats import writer

    writer(format_name)  # an unknown format is refused before anything runs
    settings = DemoSettings(Path(out), events, seed, executor, workers, progress=progress, format=format_name)
    run_demo(quick_settings(settings) if quick else settings)
    return demo_summary(settings)
