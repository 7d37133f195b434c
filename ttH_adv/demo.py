"""``tth-adv demo``: the whole analysis chain on the embedded default (synthetic) data.

Stages (each reused when its inputs are unchanged, see ``ttH_adv.pipeline``):

1. ``generate``   synthetic Run-2 ntuples and ``datasets.json``, the      -> OUT/ntuples
                  continuum MC oversampled for the background templates
2. ``process``    processor + feature dump, no model                     -> OUT/features
3. ``train``      unconstrained classifier and adversarial model, k-fold -> OUT/model
4. ``score``      processor with the model scored inside, dump scores    -> OUT/scored
5. ``categorize`` score boundaries maximising the expected significance  -> OUT/categories.json
6. ``categories`` processor with model and categories (the fit input)    -> OUT/histograms
7. ``fit``        templates, spurious signal, function choice, bias,     -> OUT/fits
                  significance, limits, pyhf workspace and cross-check
8-11.             the same four steps for the unconstrained classifier   -> OUT/*_unconstrained
12. ``report``    plots and report.md, the two models side by side        -> OUT/report

Every score is out-of-fold: the exported models hold both fold networks and score each event
with the one that did not train on it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .pipeline import Stage, run_stages

DEMO_EVENTS = 1_000_000
# A smaller network than the seed's, so the demo trains in about a minute on 2 cores.
DEMO_TRAINING = {"classifier": {"layers": [128, 128, 128]},
                 "schedule": {"pretrain_classifier_epochs": 12, "pretrain_adversary_epochs": 3, "epochs": 25,
                              "patience": 8}}
DEMO_LAMBDA = 10.0
# More continuum yy MC than the sample shares give, so the category templates have statistics to
# spare where the yy part dominates (same model, same luminosity; README "Background modelling").
DEMO_OVERSAMPLE = {"yyjets": 10, "ttyy": 5}


@dataclass
class DemoSettings:
    out: Path
    events: int = DEMO_EVENTS
    seed: int = 1
    executor: str = "futures"
    workers: int = 2
    progress: bool = True
    lam: float = DEMO_LAMBDA
    training: dict = field(default_factory=lambda: dict(DEMO_TRAINING))
    had_categories: int = 4
    lep_categories: int = 3
    min_sideband: int = 10
    oversample: dict = field(default_factory=lambda: dict(DEMO_OVERSAMPLE))

    @property
    def manifest(self) -> Path:
        return self.out / "ntuples" / "datasets.json"

    def path(self, name: str) -> Path:
        """A stage output under OUT."""
        return self.out / name


def _process(s: DemoSettings, out: str, dump: str | None, model: Path | None = None,
             categories: Path | None = None) -> None:
    from processors.run import RunOptions, run_analysis, save_output

    from .categorize import read_categories
    from .config import load_config, with_categories
    from .manifest import load_manifest

    config = load_config()
    if categories is not None:
        config = with_categories(config, read_categories(categories))
    if dump:
        shutil.rmtree(s.path(dump), ignore_errors=True)  # a fresh dump, never mixed with an older one
    options = RunOptions(executor=s.executor, workers=s.workers, dump_dir=str(s.path(dump)) if dump else None,
                         progress=s.progress, model_path=str(model) if model else None)
    save_output(run_analysis(load_manifest(s.manifest), config, options), s.path(out) / "output.coffea")


def _generate(s: DemoSettings) -> None:
    from .generator import generate_dataset

    generate_dataset(s.manifest.parent, s.events, s.seed, show_progress=s.progress, oversample=s.oversample)


def _train(s: DemoSettings) -> None:
    from training.config import load_training_config
    from training.run import run_training

    run_training(s.path("features"), s.path("model"), load_training_config(overrides=s.training),
                 [("classifier", 0.0), ("adversarial", s.lam)])


def _categorize(s: DemoSettings, suffix: str) -> None:
    from .categorize import categorize, write_categories
    from .config import load_config

    result = categorize(s.path("scored_features" + suffix), {"had": s.had_categories, "lep": s.lep_categories},
                        load_config().mass, s.min_sideband)
    write_categories(result, s.path(f"categories{suffix}.json"))


def _fit(s: DemoSettings, suffix: str) -> None:
    from processors.run import load_output

    from .config import load_config
    from .fit_analysis import run_fits, write_fit_results
    from .workspace import build_workspace, compare_with_pyhf, write_workspace

    output = load_output(s.path("histograms" + suffix) / "output.coffea")
    result = run_fits(output, load_config())
    spec = build_workspace(output, result)
    result["pyhf"] = compare_with_pyhf(result, spec)
    write_fit_results(result, s.path("fits" + suffix))
    write_workspace(spec, s.path("fits" + suffix) / "workspace.json")


def _report(s: DemoSettings) -> None:
    import json

    from processors.run import load_output

    from .config import load_config
    from .plotting import load_training_results, write_report

    fits = {label: (load_output(s.path("histograms" + suffix) / "output.coffea"),
                    json.loads((s.path("fits" + suffix) / "fits.json").read_text()))
            for label, suffix, _ in model_chains(s)}
    write_report(s.path("report"), fits, load_training_results(s.path("model")), s.path("scored_features"),
                 load_config().mass)


def model_chains(s: DemoSettings) -> list[tuple[str, str, Path]]:
    """(label, output suffix, model file) of each model the demo categorises and fits."""
    return [("decorrelated", "", s.path("model") / "model.onnx"),
            ("unconstrained", "_unconstrained", s.path("model") / "models" / "classifier.onnx")]


def _chain_stages(s: DemoSettings, suffix: str, model: Path) -> list[Stage]:
    """Score, categorise, fill the categories and fit, for one model."""
    p = s.path
    scored, categories = p("scored_features" + suffix), p(f"categories{suffix}.json")
    histograms = p("histograms" + suffix)
    counts = {"had": s.had_categories, "lep": s.lep_categories, "min_sideband": s.min_sideband}
    return [
        Stage("score" + suffix, {}, [s.manifest.parent, model], [scored],
              lambda: _process(s, "scored" + suffix, "scored_features" + suffix, model)),
        Stage("categorize" + suffix, counts, [scored], [categories], lambda: _categorize(s, suffix)),
        Stage("categories" + suffix, {}, [s.manifest.parent, model, categories], [histograms / "output.coffea"],
              lambda: _process(s, "histograms" + suffix, None, model, categories)),
        Stage("fit" + suffix, {}, [histograms / "output.coffea"], [p("fits" + suffix) / "fits.json"],
              lambda: _fit(s, suffix)),
    ]


def demo_stages(s: DemoSettings) -> list[Stage]:
    """The demo's stages in order."""
    p = s.path
    chains = model_chains(s)
    stages = [
        Stage("generate", {"events": s.events, "seed": s.seed, "oversample": s.oversample}, [], [s.manifest],
              lambda: _generate(s)),
        Stage("process", {}, [s.manifest.parent], [p("features"), p("plain") / "output.coffea"],
              lambda: _process(s, "plain", "features")),
        Stage("train", {"training": s.training, "lambda": s.lam}, [p("features")], [m for _, _, m in chains],
              lambda: _train(s)),
    ]
    for _, suffix, model in chains:
        stages += _chain_stages(s, suffix, model)
    fit_files = [p("fits" + suffix) / "fits.json" for _, suffix, _ in chains]
    return stages + [Stage("report", {}, [*fit_files, p("model") / "results.json"], [p("report") / "report.md"],
                           lambda: _report(s))]


def run_demo(s: DemoSettings) -> dict[str, str]:
    """Run (or continue) the demo; returns each stage's status."""
    s.out.mkdir(parents=True, exist_ok=True)
    return run_stages(s.out, demo_stages(s))
