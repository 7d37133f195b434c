"""Cost of scoring the model inside the processor, and onnxruntime against Keras, in one run.

    python bench/scoring_throughput.py [--events 1000000] [--layers 512 512 512 512]

Generates the dataset, trains a network of the reference analysis's size for one epoch (speed does not depend
on how well it is trained), exports it, then times side by side:
  * the processor without and with the model (iterative, one worker): ratio, goal < 1.3;
  * the same with the network's static int8 export (``training.quantize``), and its parity;
  * onnxruntime (one thread, as in a worker) against Keras ``predict`` on the same 200k-event batch.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from processors.run import RunOptions, run_analysis
from ttH_adv.config import load_config
from ttH_adv.inference import OnnxScorer
from ttH_adv.inputs.generator import generate_dataset
from ttH_adv.inputs.manifest import load_manifest


def timed(fn, repeat: int = 2) -> float:
    """Best of ``repeat`` wall times."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--layers", type=int, nargs="+", default=[512, 512, 512, 512])
    args = parser.parse_args()
    from training.config import load_training_config
    from training.run import run_training

    config = load_config()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = load_manifest(generate_dataset(tmp / "ntuples", args.events, seed=1, files_per_sample=2))
        run_analysis(manifest, config, RunOptions(progress=False, dump_dir=str(tmp / "dump")))
        cfg = load_training_config(overrides={"classifier": {"layers": args.layers}, "schedule": {"epochs": 1},
                                              "data": {"n_folds": 2}})
        run_training(tmp / "dump", tmp / "model", cfg, [("classifier", 0.0)], config)
        model = str(tmp / "model" / "model.onnx")
        from training.data import load_training_data
        from training.methods import DecorrelatedClassifier
        from training.quantize import quantize_model
        from ttH_adv.stats.metrics import mass_binning

        data = load_training_data(tmp / "dump", cfg.data)
        int8_model = str(tmp / "model" / "model_int8.onnx")
        report = quantize_model(model, int8_model, data, mass_binning(config.mass))
        plain = timed(lambda: run_analysis(manifest, config, RunOptions(progress=False)))
        scored = timed(lambda: run_analysis(manifest, config, RunOptions(progress=False, model_path=model)))
        scored_int8 = timed(lambda: run_analysis(manifest, config, RunOptions(progress=False, model_path=int8_model)))

        X = np.resize(data.X, (200_000, data.X.shape[1]))
        keras_model = DecorrelatedClassifier(cfg, "classifier", 0, data.features)
        keras_model.fit(data.X[:5000], data.y[:5000], data.mass[:5000], data.weight[:5000])
        scorer = OnnxScorer(model)
        event_number = np.arange(len(X))  # the k-fold model picks each event's network by this
        onnx_time = timed(lambda: scorer(X, event_number))
        int8_scorer = OnnxScorer(int8_model)
        int8_time = timed(lambda: int8_scorer(X, event_number))
        keras_time = timed(lambda: keras_model.classifier.predict(keras_model.standardiser(X), batch_size=65536,
                                                                  verbose=0))
    n = sum(d.n_events for d in manifest.datasets.values())
    print(f"{n:,} events; network {args.layers}")
    print(f"  processor without model   {n / plain:>12,.0f} events/s ({plain:.2f} s)")
    print(f"  processor with model      {n / scored:>12,.0f} events/s ({scored:.2f} s)")
    print(f"  slow-down with the model  {scored / plain:>12.2f}x   (goal < 1.3x)")
    print(f"  processor with int8 model {n / scored_int8:>12,.0f} events/s ({scored_int8:.2f} s)")
    print(f"  slow-down with the int8 model {scored_int8 / plain:>8.2f}x   (goal < 1.3x)")
    print(f"  onnxruntime, 1 thread     {len(X) / onnx_time:>12,.0f} events/s")
    print(f"  onnxruntime int8, 1 thread {len(X) / int8_time:>11,.0f} events/s")
    parity, f, q = report["parity"], report["float"], report["int8"]
    print(f"  int8 vs float: |score difference| max {parity['max_abs_difference']:.3g}, 99% within "
          f"{parity['p99_abs_difference']:.3g}; R50 {f['r50']:.2f} -> {q['r50']:.2f}; "
          f"JSD50/floor {f['ratio50']:.2f} -> {q['ratio50']:.2f} (one-epoch network)")
    print(f"  Keras predict             {len(X) / keras_time:>12,.0f} events/s")
    print(f"  onnxruntime / Keras       {keras_time / onnx_time:>12.2f}x faster")


if __name__ == "__main__":
    main()
