"""Regenerate the reference output that tests/test_reference.py compares against.

    python tests/reference/make_reference.py

Run it only when a change to the generator, selection or weights is intended, and say why
in the commit message; the diff of reference_output.json shows what moved.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
REFERENCE_EVENTS = 20_000
REFERENCE_SEED = 2024


def reference_summary(output: dict) -> dict:
    """Cutflow and the non-zero histogram bins (``mgg``; ``mgg_control`` under ``control/``, ``mgg_inclusive`` under
    ``inclusive/``), as plain JSON-able data."""
    bins = {}
    for name, prefix in (("mgg", ""), ("mgg_control", "control/"), ("mgg_inclusive", "inclusive/")):
        h = output["histograms"][name]
        for d in sorted(h.axes["dataset"]):
            for r in h.axes["region"]:
                for c in h.axes["category"]:
                    sl = h[{"dataset": d, "region": r, "category": c, "systematic": "nominal"}]
                    values, variances = sl.values(), sl.variances()
                    bins[f"{prefix}{d}/{r}/{c}"] = {str(i): [float(values[i]), float(variances[i])]
                                                    for i in range(len(values)) if values[i] != 0}
    cutflow = {d: output["cutflow"][d] for d in sorted(output["cutflow"])}
    return {"events": REFERENCE_EVENTS, "seed": REFERENCE_SEED, "cutflow": cutflow, "histograms": bins}


def compute_reference() -> dict:
    """The reference summary of the processor's output on the reference dataset."""
    return reference_summary(reference_output())


def reference_output() -> dict:
    """Generate the reference dataset and run the processor on it."""
    from processors.run import RunOptions, run_analysis
    from ttH_adv.config import load_config
    from ttH_adv.inputs.generator import generate_dataset
    from ttH_adv.inputs.manifest import load_manifest

    with tempfile.TemporaryDirectory() as tmp:
        manifest = load_manifest(generate_dataset(tmp, REFERENCE_EVENTS, REFERENCE_SEED))
        return run_analysis(manifest, load_config(), RunOptions(progress=False))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent.parent))
    path = HERE / "reference_output.json"
    path.write_text(json.dumps(compute_reference(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}")
