"""Correlation of background photon kinematics with m_yy, next to the reference analysis's table.

    python bench/generator_correlations.py [--events 200000] [--seed 1]

Generates data, selects diphotons (photon acceptance, pT/m_yy, 105-160 GeV), splits TI/NTNI,
and prints Pearson correlations with m_yy.
"""

from __future__ import annotations

import argparse
import tempfile

import awkward as ak
import numpy as np

from ttH_adv.config import load_config
from ttH_adv.event import selections as sel
from ttH_adv.event.columns import delta_phi
from ttH_adv.inputs import objects
from ttH_adv.inputs.generator import generate_dataset
from ttH_adv.inputs.manifest import load_manifest
from ttH_adv.inputs.schema import read_events

SEED_000 = {"lead pT": 0.27, "sublead pT": 0.36, "dR": 0.28, "dphi": 0.22, "deta": 0.10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    cfg = load_config()
    with tempfile.TemporaryDirectory() as out:
        manifest = load_manifest(generate_dataset(out, args.events, args.seed, samples=["data"]))
        events = ak.concatenate([read_events(f, cfg.format().branches, t) for f, t in manifest.datasets["data"].files.items()])
    d = sel.leading_diphoton(objects.collections(events, cfg.format())["photons"], cfg.photons)
    passed = sel.diphoton_passes_relative_pt(d, cfg.photons) & sel.in_mass_window(d.mass, cfg.mass.low, cfg.mass.high)
    ti = sel.photon_is_tight_isolated(d.lead, cfg.format()) & sel.photon_is_tight_isolated(d.sublead, cfg.format())
    print(f"{'variable':<12} {'reference':>9} {'NTNI':>7} {'TI':>7}")
    columns = {}
    for region, mask in (("NTNI", passed & ~ti), ("TI", passed & ti)):
        lead, sub, mass = d.lead.take(mask), d.sublead.take(mask), d.mass[mask]
        dphi = np.abs(delta_phi(lead.phi, sub.phi))
        deta = np.abs(lead.eta - sub.eta)
        values = {"lead pT": lead.pt, "sublead pT": sub.pt,
                  "dR": np.hypot(dphi, deta), "dphi": dphi, "deta": deta}
        columns[region] = {k: np.corrcoef(v, mass)[0, 1] for k, v in values.items()}
    for name, ref in SEED_000.items():
        print(f"{name:<12} {ref:>9.2f} {columns['NTNI'][name]:>7.2f} {columns['TI'][name]:>7.2f}")


if __name__ == "__main__":
    main()
