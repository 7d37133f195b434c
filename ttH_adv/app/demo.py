"""``tth-adv demo``: the whole analysis chain on the embedded default (synthetic) data.

Stages (each reused when its inputs are unchanged, see ``ttH_adv.app.pipeline``), each a call of a
``ttH_adv.app.stages`` function:

1. ``generate``         synthetic Run-2 ntuples and ``datasets.json``, the       -> OUT/ntuples
                        continuum MC oversampled for the background templates
2. ``process``          processor + feature dump, no model                      -> OUT/features
3. ``train_<features>`` one training per feature set (seed: unconstrained,      -> OUT/model, OUT/model_<features>
                        drop-correlated, adversarial; scaled: unconstrained;
                        extended: adversarial, drop-correlated), k-fold
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

from ..output import OUTPUT_FILE
from .pipeline import Stage, run_stages

DEMO_EVENTS = 1_000_000
# A smaller network than the seed's, so the demo trains in about a minute on 2 cores.
# Early stopping after 4 epochs without a better one: the decorrelating methods' selected epochs
# come within the first three of the adversarial phase here (patience 8 ran five more at ~4 s each).
DEMO_TRAINING = {"classifier": {"layers": [128, 128, 128]},
                 "schedule": {"pretrain_classifier_epochs": 12, "pretrain_adversary_epochs": 3, "epochs": 25,
                              "patience": 4}}
DEMO_LAMBDA = 10.0
# What the demo trains, per feature set (one training folder each): the unconstrained classifier,
# ATLAS's two practices (drop the m_yy-correlated features; photon pT and E over m_yy), the
# adversarial model, and the features ATLAS's ttH(yy) BDT uses on top (b-tags, leptons, MET, H_T).
DEMO_TRAININGS: dict[str, list[tuple[str, float]]] = {
    "seed": [("classifier", 0.0), ("drop-correlated", 0.0), ("adversarial", DEMO_LAMBDA)],
    "scaled": [("classifier", 0.0)],
    "extended": [("adversarial", DEMO_LAMBDA), ("drop-correlated", 0.0)],
}
# More continuum yy MC than the sample shares give, so the category templates reach
# fits.template_min_statistics where the yy part dominates (same model, same luminosity; README
# "Background modelling"): with 10x the seed-feature adversarial model's had_1/had_2 templates held 4.4x
# and 4.9x the data.
DEMO_OVERSAMPLE = {"yyjets": 15, "ttyy": 5}


@dataclass
class DemoSettings:
    out: Path
    events: int = DEMO_EVENTS
    seed: int = 1
    executor: str = "futures"
    workers: int = 2
    progress: bool = True
    format: str = "opendata2020"  # the input format the generator writes (ttH_adv.inputs.ntuple_formats)
    training: dict = field(default_factory=lambda: dict(DEMO_TRAINING))
    trainings: dict[str, list[tuple[str, float]]] = field(default_factory=lambda: dict(DEMO_TRAININGS))
    had_categories: int = 4
    lep_categories: int = 3
    min_sideband: int = 10
    oversample: dict = field(default_factory=lambda: dict(DEMO_OVERSAMPLE))
    # The comparison's results the report shows category by category: the adversarial model on the
    # extended features, which gives the best expected Z with the modelling uncertainty (docs/results.md), and
    # the unconstrained classifier.
    decorrelated: str = f"extended.adversarial_lam{DEMO_LAMBDA:g}"
    unconstrained: str = "seed.classifier"

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

    def model_dir(self, feature_set: str) -> Path:
        """The training folder of one feature set: OUT/model for the seed's, OUT/model_<set> for the others."""
        return self.path("model" if feature_set == "seed" else f"model_{feature_set}")


def quick_settings(s: DemoSettings) -> DemoSettings:
    """Tiny networks, few categories, little oversampling: the whole chain in a few minutes (tests, not physics)."""
    return replace(s, training={"classifier": {"layers": [32, 32]},
                                "schedule": {"pretrain_classifier_epochs": 1, "pretrain_adversary_epochs": 1,
                                             "epochs": 2, "patience": 2}},
                   had_categories=2, lep_categories=1, min_sideband=5, oversample={"yyjets": 2, "ttyy": 2})


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


def _train(s: DemoSettings, feature_set: str) -> None:
    from training.config import load_training_config

    from . import stages

    config = load_training_config(overrides={**s.training, "data": {"feature_set": feature_set}})
    stages.train(s.path("features"), s.model_dir(feature_set), config, s.trainings[feature_set], _config())


def _results(s: DemoSettings) -> list:
    from ..stats.compare import trained_results

    return trained_results([s.model_dir(f) for f in s.trainings])


def _comparison(s: DemoSettings):
    from .stages import ComparePaths

    return ComparePaths(s.path("compare"))


def _report(s: DemoSettings) -> None:
    import json

    from ..output import labelled, load_output
    from ..report.plotting import load_training_results
    from . import stages

    paths = _comparison(s)
    fits = {label: (load_output(paths.histograms(result)), json.loads((paths.fits(result) / "fits.json").read_text()))
            for label, result in (("decorrelated", s.decorrelated), ("unconstrained", s.unconstrained))}
    rows = json.loads((paths.out / "comparison.json").read_text())["rows"]
    stages.report(s.path("report"), fits, load_training_results(*(s.model_dir(f) for f in s.trainings)), paths.scored,
                  _config(), rows, labelled("score", s.decorrelated))


def demo_stages(s: DemoSettings) -> list[Stage]:
    """The demo's stages in order."""
    from . import stages

    p, paths = s.path, _comparison(s)
    models = [s.model_dir(f) / "results.json" for f in s.trainings]
    chain = [
        Stage("generate", {"events": s.events, "seed": s.seed, "oversample": s.oversample, "format": s.format}, [],
              [s.manifest],
              lambda: _generate(s)),
        Stage("process", {}, [s.manifest.parent], [p("features"), p("plain") / OUTPUT_FILE], lambda: _process(s)),
    ]
    chain += [Stage(f"train_{f}", {"training": s.training, "runs": runs}, [p("features")], [s.model_dir(f) / "results.json"],
                    lambda f=f: _train(s, f)) for f, runs in s.trainings.items()]
    counts = {**s.counts, "min_sideband": s.min_sideband}
    chain += [
        Stage("compare_score", {}, [s.manifest.parent, *models], [paths.scored],
              lambda: stages.compare_score(_manifest(s), _results(s), paths, _config(), _options(s))),
        Stage("compare_categorize", counts, [paths.scored], [paths.out / "categories.done"],
              lambda: _mark(paths.out / "categories.done", stages.compare_categorize(
                  _results(s), paths, _config(), s.counts, s.min_sideband))),
        Stage("compare_fill", {}, [s.manifest.parent, paths.out / "categories.done"], [paths.out / "filled.done"],
              lambda: _mark(paths.out / "filled.done", stages.compare_fill(_manifest(s), _results(s), paths, _config(),
                                                                           _options(s)))),
        Stage("compare_fit", {}, [paths.out / "filled.done"], [paths.out / "fitted.done"],
              lambda: _mark(paths.out / "fitted.done", stages.compare_fit(_results(s), paths, _config(), s.workers))),
        Stage("compare_table", {}, [paths.out / "fitted.done"], [paths.out / "comparison.md"],
              lambda: stages.compare_table(_results(s), paths)),
        Stage("report", {"decorrelated": s.decorrelated, "unconstrained": s.unconstrained},
              [paths.out / "comparison.md", *models], [p("report") / "report.md"], lambda: _report(s)),
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
    import json

    from processors.run import summary

    from ..output import load_output
    from ..stats.compare import comparison_markdown, comparison_summary
    from ..stats.fit_analysis import category_table

    paths = _comparison(s)
    lines = [summary(load_output(s.path("plain") / OUTPUT_FILE))]
    for feature_set in s.trainings:
        lines += [f"training, {feature_set} features:",
                  json.loads((s.model_dir(feature_set) / "results.json").read_text())["table"]]
    for label, result in (("decorrelated", s.decorrelated), ("unconstrained", s.unconstrained)):
        lines += [f"categories of the {label} classifier ({result}, out-of-fold scores):",
                  category_table(json.loads((paths.fits(result) / "fits.json").read_text()))]
    rows = json.loads((paths.out / "comparison.json").read_text())["rows"]
    lines += ["methods side by side:", *comparison_markdown(rows), comparison_summary(rows),
              f"report: {s.path('report') / 'report.md'}"]
    return "\n".join(lines)
