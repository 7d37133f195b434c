"""The decorrelation methods on the toy of Louppe, Kagan & Cranmer (2017, section 5.1).

    python bench/pivot_toy.py

Prints, per method, the JSD between the background score densities at z = -1 and z = +1 and the
AUC: the figures of ``tests/test_training.py::test_any_protected_variable_the_pivot_toy`` (same
seed, same configuration), which asserts bounds on them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_training import PIVOT_CONFIG, pivot_figures  # noqa: E402

from training.config import load_training_config  # noqa: E402


def main() -> None:
    figures = pivot_figures(load_training_config(overrides=PIVOT_CONFIG), np.random.default_rng(0))
    base = figures["classifier"][0]
    print(f"{'method':<14}{'JSD(z=-1, z=+1)':>16}{'reduction':>11}{'AUC':>7}")
    for method, (jsd, auc) in figures.items():
        print(f"{method:<14}{jsd:>16.4f}{base / jsd:>10.1f}x{auc:>7.3f}")


if __name__ == "__main__":
    main()
