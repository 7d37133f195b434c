"""``tth-adv demo``: the analysis chain on the embedded default (synthetic) data.

Stages (each reused when its inputs are unchanged, see ``ttH_adv.pipeline``):

1. ``generate``: synthetic Run-2 ntuples and ``datasets.json`` -> ``OUT/ntuples``
2. ``process``: the ttH(yy) processor with feature dump -> ``OUT/histograms/output.coffea``,
   ``OUT/features``
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .pipeline import Stage, run_stages

DEMO_EVENTS = 200_000


@dataclass
class DemoSettings:
    out: Path
    events: int = DEMO_EVENTS
    seed: int = 1
    executor: str = "futures"
    workers: int = 2
    progress: bool = True

    @property
    def manifest(self) -> Path:
        return self.out / "ntuples" / "datasets.json"

    @property
    def histograms(self) -> Path:
        return self.out / "histograms" / "output.coffea"

    @property
    def features(self) -> Path:
        return self.out / "features"


def _generate(s: DemoSettings) -> None:
    from .generator import generate_dataset

    generate_dataset(s.manifest.parent, s.events, s.seed, show_progress=s.progress)


def _process(s: DemoSettings) -> None:
    import shutil

    from processors.run import RunOptions, run_analysis, save_output

    from .config import load_config
    from .manifest import load_manifest

    shutil.rmtree(s.features, ignore_errors=True)  # a fresh dump, never mixed with an older one
    options = RunOptions(executor=s.executor, workers=s.workers, dump_dir=str(s.features), progress=s.progress)
    save_output(run_analysis(load_manifest(s.manifest), load_config(), options), s.histograms)


def demo_stages(s: DemoSettings) -> list[Stage]:
    """The demo's stages in order."""
    return [
        Stage("generate", {"events": s.events, "seed": s.seed}, [], [s.manifest], lambda: _generate(s)),
        Stage("process", {"executor": "any"}, [s.manifest.parent], [s.histograms, s.features], lambda: _process(s)),
    ]


def run_demo(s: DemoSettings) -> dict[str, str]:
    """Run (or continue) the demo; returns each stage's status."""
    s.out.mkdir(parents=True, exist_ok=True)
    return run_stages(s.out, demo_stages(s))
