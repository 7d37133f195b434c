"""``tth-adv demo``: the whole analysis chain on the embedded default (synthetic) data.

Stages (each reused when its inputs are unchanged, see ``ttH_adv.pipeline``):

1. ``generate``   synthetic Run-2 ntuples and ``datasets.json``           -> OUT/ntuples
2. ``process``    processor + feature dump, no model                     -> OUT/features
3. ``train``      unconstrained classifier and adversarial model, ONNX   -> OUT/model
4. ``score``      processor with the model scored inside, dump scores    -> OUT/scored
5. ``categorize`` score boundaries maximising the expected significance  -> OUT/categories.json
6. ``categories`` processor with model and categories (the fit input)    -> OUT/histograms
7. ``fit``        sideband fits, spurious signal, significance, pyhf     -> OUT/fits
8. ``report``     plots and report.md                                    -> OUT/report
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

    generate_dataset(s.manifest.parent, s.events, s.seed, show_progress=s.progress)


def _train(s: DemoSettings) -> None:
    from training.config import load_training_config
    from training.run import run_training

    run_training(s.path("features"), s.path("model"), load_training_config(overrides=s.training),
                 [("classifier", 0.0), ("adversarial", s.lam)])


def _categorize(s: DemoSettings) -> None:
    from .categorize import categorize, write_categories
    from .config import load_config

    result = categorize(s.path("scored_features"), {"had": s.had_categories, "lep": s.lep_categories},
                        load_config().mass, s.min_sideband)
    write_categories(result, s.path("categories.json"))


def _fit(s: DemoSettings) -> None:
    from processors.run import load_output

    from .config import load_config
    from .fit_analysis import run_fits, write_fit_results
    from .workspace import build_workspace, write_workspace

    output = load_output(s.path("histograms") / "output.coffea")
    result = run_fits(output, load_config().mass)
    write_fit_results(result, s.path("fits"))
    write_workspace(build_workspace(output, result), s.path("fits") / "workspace.json")


def _report(s: DemoSettings) -> None:
    import json

    from processors.run import load_output

    from .config import load_config
    from .plotting import load_training_results, write_report

    output = load_output(s.path("histograms") / "output.coffea")
    fit_result = json.loads((s.path("fits") / "fits.json").read_text())
    write_report(s.path("report"), output, fit_result, load_training_results(s.path("model")),
                 s.path("scored_features"), load_config().mass)


def demo_stages(s: DemoSettings) -> list[Stage]:
    """The demo's stages in order."""
    p = s.path
    model = p("model") / "model.onnx"
    return [
        Stage("generate", {"events": s.events, "seed": s.seed}, [], [s.manifest], lambda: _generate(s)),
        Stage("process", {}, [s.manifest.parent], [p("features"), p("plain") / "output.coffea"],
              lambda: _process(s, "plain", "features")),
        Stage("train", {"training": s.training, "lambda": s.lam}, [p("features")], [model], lambda: _train(s)),
        Stage("score", {}, [s.manifest.parent, model], [p("scored_features")],
              lambda: _process(s, "scored", "scored_features", model)),
        Stage("categorize", {"had": s.had_categories, "lep": s.lep_categories, "min_sideband": s.min_sideband},
              [p("scored_features")], [p("categories.json")], lambda: _categorize(s)),
        Stage("categories", {}, [s.manifest.parent, model, p("categories.json")],
              [p("histograms") / "output.coffea"],
              lambda: _process(s, "histograms", None, model, p("categories.json"))),
        Stage("fit", {}, [p("histograms") / "output.coffea"], [p("fits") / "fits.json"], lambda: _fit(s)),
        Stage("report", {}, [p("fits") / "fits.json", p("model") / "results.json"], [p("report") / "report.md"],
              lambda: _report(s)),
    ]


def run_demo(s: DemoSettings) -> dict[str, str]:
    """Run (or continue) the demo; returns each stage's status."""
    s.out.mkdir(parents=True, exist_ok=True)
    return run_stages(s.out, demo_stages(s))
