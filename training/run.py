"""Train methods and lambdas with k-fold scoring; write the Pareto table and the chosen model.

For every (method, lambda): one model per fold (trained on the other folds, early-stopped and
selected on a validation split of them), out-of-fold scores for every event, and metrics on
those scores: AUC, R50, R80, JSD at the 50% and 80% working points with their floors, the
score-m_yy correlations on background, a KS overtraining check, and the training time.

The chosen model follows the one selection rule (``selection`` in the configuration), the epochs'
rule on out-of-fold scores: among results within ``flatness_target`` x the floor at 50% and 80%
signal efficiency the highest R50, else the flattest.  With several seeds (``seeds``), a method
given several lambdas is scanned on the first seed, its lambda chosen by that rule, and the other
seeds train at the chosen lambda (``lambda_choice`` in results.json records the scan); every
result carries its seed.  Each result records the epoch its fold networks kept and whether it was
within the flatness target (``kept_epochs``).
Every result is exported with all k fold networks in one ONNX file (``MODELDIR/models/``; each
event is scored by the network that did not train on it, ``training.export``); the chosen one is
``MODELDIR/model.onnx`` and its out-of-fold scores of every training event are
``MODELDIR/out_of_fold.parquet`` (dataset, eventNumber, score), which ``tth-adv run --model``
reproduces.  The table is in ``MODELDIR/results.json``.  JSD figures use the m_yy binning of the
analysis configuration's mass window.  With ``all_events`` the chosen (method, lambda) is also
trained once on every event, ``MODELDIR/model_all_events.onnx``, for data no fold has seen: it
is marked in its metadata, and the processor warns when it scores its own training datasets.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ttH_adv.atomic import atomic_path, write_text
from ttH_adv.config import AnalysisConfig
from ttH_adv.stats import metrics
from ttH_adv.stats.training_results import (
    Chosen,
    LambdaChoice,
    ScanPoint,
    TrainedEntry,
    TrainingMetrics,
    TrainingSummary,
)

from .config import TrainingConfig
from .data import TrainingData, load_single_higgs, load_training_data
from .export import export_onnx
from .methods import DecorrelatedClassifier, FixedEfficiency, evaluate_scores
from .models import tf
from .registry import method_spec, result_name

log = logging.getLogger(__name__)

TABLE_COLUMNS = ("method", "lambda", "auc", "r50", "r80", "inverse_jsd50", "ratio50", "inverse_jsd80", "ratio80",
                 "pearson_correlation", "distance_correlation", "seconds_per_epoch_per_100k")


@dataclass
class MethodResult:
    method: str
    lam: float
    metrics: dict[str, float]
    history: list[list[dict]] = field(default_factory=list)
    model_file: str = ""
    seed: int = 1
    seeded_name: bool = False  # the name carries the seed (trainings of several seeds)

    @property
    def name(self) -> str:
        """File-name-safe label, e.g. 'adversarial_lam30' (with several seeds 'adversarial_lam30_seed2')."""
        return result_name(self.method, self.lam) + (f"_seed{self.seed}" if self.seeded_name else "")


def fit_network(data: TrainingData, config: TrainingConfig, method: str, lam: float,
                binning: metrics.Binning) -> tuple[DecorrelatedClassifier, float, int]:
    """One network on ``data`` (early stopping and selection on its validation split); its seconds and events."""
    fit, validation = data.split_validation(config.data.validation_fraction)
    model = DecorrelatedClassifier(config, method, lam, data.features)
    start = time.perf_counter()
    model.fit(fit.X, fit.y, fit.mass, fit.weight, (validation.X, validation.y, validation.mass, validation.weight),
              binning)
    return model, time.perf_counter() - start, len(fit)


def train_one(data: TrainingData, config: TrainingConfig, method: str, lam: float, binning: metrics.Binning,
              with_curve: bool = True, held_out: TrainingData | None = None
              ) -> tuple[MethodResult, list[DecorrelatedClassifier], np.ndarray]:
    """k-fold training of one (method, lambda): the result, the k fold models, the out-of-fold scores (with the
    ceiling's curve where the method reports a ceiling and ``with_curve``).  ``held_out``: single-Higgs events no
    network trains on (a binary method's), scored by the fold rule's network and evaluated as class 2."""
    n_folds = config.data.n_folds
    scores = np.zeros(len(data))
    models, histories, train_seconds, epoch_events = [], [], 0.0, []
    for k in range(n_folds):
        train, test = data.fold(k, n_folds)
        model, seconds, fit_events = fit_network(train, config, method, lam, binning)
        train_seconds += seconds
        epoch_events += [r.seconds / fit_events * 1e5 for r in model.history if r.phase in ("adversarial", "train")]
        scores[data.test_mask(k, n_folds)] = model.predict(test.X, test.mass)
        histories.append(model.history_dicts())
        models.append(model)
    result = evaluate_scores(*_with_held_out(scores, data, models, held_out), binning)
    result["seconds_per_epoch_per_100k"] = float(np.mean(epoch_events)) if epoch_events else float("nan")
    result["training_seconds"] = train_seconds
    result["overtraining_ks"], result["score_histograms"] = _overtraining(models[0], data, n_folds)
    result["dropped_features"] = models[0].dropped
    result["roc"] = _roc_points(scores, data.y, data.weight)
    result["kept_epochs"] = [{"fold": k, "epoch": m.best_epoch, "within_target": m.best_within_target}
                             for k, m in enumerate(models)]
    result["unconstrained"] = models[0].strategy.unconstrained
    if models[0].strategy.reports_ceiling:
        ceiling = fixed_efficiency_ceiling(models, data, binning)
        if ceiling:
            result["ceiling"] = ceiling
            if with_curve:
                result["ceiling_curve"] = ceiling_curve(models, data, binning)
    return MethodResult(method, lam, result, histories, seed=config.schedule.seed), models, scores


def _with_held_out(scores: np.ndarray, data: TrainingData, models: list[DecorrelatedClassifier],
                   held_out: TrainingData | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(scores, y, m_yy, weights) of the evaluation: the out-of-fold events, and the held-out single-Higgs events
    (y = 2) scored by network eventNumber mod k."""
    if held_out is None or not len(held_out):
        return scores, data.y, data.mass, data.weight
    extra = np.zeros(len(held_out))
    for k, model in enumerate(models):
        mine = held_out.test_mask(k, len(models))
        extra[mine] = model.predict(held_out.X[mine], held_out.mass[mine])
    return (np.concatenate([scores, extra]), np.concatenate([data.y, np.full(len(held_out), 2, np.int8)]),
            np.concatenate([data.mass, held_out.mass]), np.concatenate([data.weight, held_out.weight]))


CEILING_KEYS = ("auc", "r50", "r80", "ratio50", "ratio80", "inverse_jsd50", "inverse_jsd80")


def fixed_efficiency_ceiling(models: list[DecorrelatedClassifier], data: TrainingData,
                             binning: metrics.Binning, events_per_bin: int | None = None) -> dict[str, float] | None:
    """The ceiling: each fold's unconstrained network made flat by a cross-fitted percentile map.

    Each fold's test background is split in two halves by eventNumber; each half is scored by a
    map (``FixedEfficiency``) fitted on the other half, so every event meets a network and a map
    that never saw it, and the map has 2.5x the validation split's background (the ``ddt``
    method's own map, fitted on the validation split, stays at 2-4x the floor on the 3M sample).
    A reference figure for the tables, not an exported model; None where a half holds fewer than
    ``baselines.ceiling_events_per_bin`` background events."""
    n_folds, scores = len(models), np.zeros(len(data))
    per_bin = events_per_bin or models[0].config.baselines.ceiling_events_per_bin
    for k, model in enumerate(models):
        _, test = data.fold(k, n_folds)
        logits = model.logits(test.X)
        half = ceiling_half(test.event_number, n_folds)
        fold_scores = np.zeros(len(test))
        for h in (0, 1):
            source = (half != h) & (test.y == 0)
            if source.sum() < min(per_bin, model.config.baselines.ceiling_events_per_bin):
                log.info("no ddt ceiling: %d background events in a half of fold %d", int(source.sum()), k)
                return None
            fold_scores[half == h] = mapped_scores(
                model.config, (logits[source], test.mass[source], test.weight[source]),
                logits[half == h], test.mass[half == h], bins=max(1, int(source.sum()) // per_bin))
        scores[data.test_mask(k, n_folds)] = fold_scores
    figures = evaluate_scores(scores, data.y, data.mass, data.weight, binning)
    return {key: figures[key] for key in CEILING_KEYS}


def ceiling_curve(models: list[DecorrelatedClassifier], data: TrainingData, binning: metrics.Binning
                  ) -> list[dict[str, float]]:
    """The ceiling at several flatnesses: its cross-fitted maps with ``baselines.ceiling_scan`` background events
    per m_yy bin (fewer bins, a coarser map: more rejection, less flat; one bin is the unconstrained score)."""
    points = []
    for per_bin in models[0].config.baselines.ceiling_scan:
        found = fixed_efficiency_ceiling(models, data, binning, per_bin)
        if found:
            points.append({"events_per_bin": per_bin, **found})
    return points


def ceiling_half(event_number: np.ndarray, n_folds: int) -> np.ndarray:
    """0 or 1 per test-fold event: the ceiling's cross-fitting halves (independent of the fold rule)."""
    return (event_number // n_folds) % 2


def mapped_scores(config: TrainingConfig, fitted_on: tuple[np.ndarray, np.ndarray, np.ndarray],
                  logits: np.ndarray, protected: np.ndarray, bins: int) -> np.ndarray:
    """Scores of (logits, protected) through a ``FixedEfficiency`` map fitted on (logits, protected, weights)."""
    flat = FixedEfficiency(config)
    flat.fit_output(*fitted_on, bins=bins)
    return flat.score(tf.constant(logits), tf.constant(protected)).numpy()


def _roc_points(scores: np.ndarray, y: np.ndarray, weight: np.ndarray, points: int = 200) -> dict[str, list]:
    """The out-of-fold ROC curve, thinned to at most ``points`` points, for plots."""
    eff_b, eff_s, _ = metrics.roc_curve(scores, y, weight)
    keep = np.unique(np.linspace(0, len(eff_s) - 1, points).astype(int))
    return {"signal_efficiency": eff_s[keep].tolist(), "background_efficiency": eff_b[keep].tolist()}


def _overtraining(model: DecorrelatedClassifier, data: TrainingData, n_folds: int) -> tuple[dict, dict]:
    """KS train/test comparison of the fold-0 model, and its score histograms (40 bins in [0, 1])."""
    train, test = data.fold(0, n_folds)
    ks, histograms = {}, {}
    for label, cls in (("signal", 1), ("background", 0)):
        s_train = model.predict(train.X[train.y == cls], train.mass[train.y == cls])
        s_test = model.predict(test.X[test.y == cls], test.mass[test.y == cls])
        ks[label] = metrics.overtraining_ks(s_train, s_test)
        histograms[label] = {"train": np.histogram(s_train, 40, (0, 1), density=True)[0].tolist(),
                             "test": np.histogram(s_test, 40, (0, 1), density=True)[0].tolist()}
    return ks, histograms


def flatness(m: dict) -> float:
    """The worse out-of-fold JSD/floor of 50% and 80% signal efficiency."""
    return max(m["ratio50"], m["ratio80"])


def choose(results: list[MethodResult], target: float) -> MethodResult:
    """The selection rule applied to results: within ``target`` x the floor at 50% and 80%, the highest R50;
    else the flattest."""
    def key(r: MethodResult) -> tuple:
        return (1, r.metrics["r50"]) if flatness(r.metrics) <= target else (0, -flatness(r.metrics))

    return max(results, key=key)


def ceiling_of(results: list[MethodResult]) -> dict[str, float] | None:
    """The fixed-efficiency ceiling's figures, where a result reports one."""
    return next((r.metrics["ceiling"] for r in results if "ceiling" in r.metrics), None)


def format_table(results: list[MethodResult]) -> str:
    """The Pareto table as aligned text; with a ddt result, its ceiling row and R50 as a fraction of it."""
    ceiling = ceiling_of(results)
    header = f"{'method':<16}{'lambda':>7}{'AUC':>7}{'R50':>8}{'/ceil':>6}{'R80':>7}{'1/JSD50':>9}{'JSD50/fl':>9}" \
             f"{'1/JSD80':>9}{'JSD80/fl':>9}{'Pearson':>8}{'dCor':>6}{'s/ep/100k':>10}"
    lines = [header]
    for r in results:
        m = r.metrics
        share = f"{m['r50'] / ceiling['r50']:>6.2f}" if ceiling else f"{'':>6}"
        lines.append(f"{r.method:<16}{r.lam:>7g}{m['auc']:>7.3f}{m['r50']:>8.1f}{share}{m['r80']:>7.2f}"
                     f"{m['inverse_jsd50']:>9.0f}{m['ratio50']:>9.1f}{m['inverse_jsd80']:>9.0f}{m['ratio80']:>9.1f}"
                     f"{m['pearson_correlation']:>8.3f}{m['distance_correlation']:>6.3f}"
                     f"{m['seconds_per_epoch_per_100k']:>10.1f}")
    if ceiling:
        c = ceiling
        lines.append(f"{'ddt ceiling':<16}{'':>7}{c['auc']:>7.3f}{c['r50']:>8.1f}{1.0:>6.2f}{c['r80']:>7.2f}"
                     f"{c['inverse_jsd50']:>9.0f}{c['ratio50']:>9.1f}{c['inverse_jsd80']:>9.0f}{c['ratio80']:>9.1f}")
    return "\n".join(lines)


def training_samples(data: TrainingData, config: TrainingConfig) -> dict:
    """What trained a model, for its metadata: classes, datasets, counts, folds."""
    samples = {"signal": sorted(set(data.dataset[data.y == 1].tolist())), "background": config.data.background,
               "datasets": sorted(set(data.dataset.tolist())), "min_jets": config.data.min_jets,
               "n_signal": int((data.y == 1).sum()), "n_background": int((data.y == 0).sum()),
               "n_folds": config.data.n_folds}
    if (data.y == 2).any():
        samples.update({"single_higgs": sorted(set(data.dataset[data.y == 2].tolist())),
                        "n_single_higgs": int((data.y == 2).sum())})
    return samples


def quantized(out: Path, data: TrainingData, binning: metrics.Binning) -> dict:
    """The int8 export of ``out/model.onnx`` and its report; a refused one is reported, not fatal."""
    from .quantize import QuantisationError, quantize_model

    try:
        report = quantize_model(out / "model.onnx", out / "model_int8.onnx", data, binning)
    except QuantisationError as exc:
        log.warning("%s", exc)
        return {**exc.report, "refused": str(exc)}
    log.info("int8 model: R50 %.2f -> %.2f, JSD50/floor %.2f -> %.2f, 99%% of scores within %.2g",
             report["float"]["r50"], report["int8"]["r50"], report["float"]["ratio50"], report["int8"]["ratio50"],
             report["parity"]["p99_abs_difference"])
    return report


def write_out_of_fold(path: Path, data: TrainingData, scores: np.ndarray) -> Path:
    """out_of_fold.parquet: (dataset, eventNumber, score) of every training event."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(pa.table({"dataset": data.dataset.astype(str), "eventNumber": data.event_number,
                                 "score": np.asarray(scores, dtype=np.float64)}), tmp)
    return path


def _trained(data: TrainingData, config: TrainingConfig, method: str, lam: float, seed: int, seeded: bool,
             binning: metrics.Binning, out: Path, samples: dict, held_out: TrainingData | None = None
             ) -> tuple[MethodResult, np.ndarray]:
    """One (method, lambda, seed) trained k-fold and exported; its result and out-of-fold scores."""
    seeded_config = replace(config, schedule=replace(config.schedule, seed=seed))
    log.info("training %s (lambda %g, seed %d), %d folds", method, lam, seed, config.data.n_folds)
    # the ceiling's curve once, on the first seed: the comparison reads every row's ceiling off it
    result, models, scores = train_one(data, seeded_config, method, lam, binning,
                                       with_curve=seed == config.schedule.seed, held_out=held_out)
    result.seeded_name = seeded
    path = export_onnx(models, out / "models" / f"{result.name}.onnx", config.data.feature_set, data.features,
                       {"ttH_adv.training_samples": samples,
                        "ttH_adv.validation_metrics": {k: v for k, v in result.metrics.items() if isinstance(v, float)}})
    result.model_file = str(path)
    log.info("%s: AUC %.3f R50 %.1f JSD50/floor %.1f JSD80/floor %.1f", result.name, result.metrics["auc"],
             result.metrics["r50"], result.metrics["ratio50"], result.metrics["ratio80"])
    return result, scores


def planned_runs(runs: list[tuple[str, float]]) -> dict[str, list[float]]:
    """The lambdas asked for each method, in order."""
    plan: dict[str, list[float]] = {}
    for method, lam in runs:
        plan.setdefault(method, [])
        if lam not in plan[method]:
            plan[method].append(lam)
    return plan


def run_training(features_dir: str | Path, out_dir: str | Path, config: TrainingConfig,
                 runs: list[tuple[str, float]], analysis: AnalysisConfig,
                 all_events: bool = False, int8: bool = False, seeds: int = 1) -> TrainingSummary:
    """Train every (method, lambda) in ``runs`` for ``seeds`` seeds (a lambda scan on the first, then the chosen
    lambda); write results.json, models/, model.onnx, out_of_fold.parquet."""
    out = Path(out_dir)
    (out / "models").mkdir(parents=True, exist_ok=True)
    binning = metrics.mass_binning(analysis.mass)
    data = load_training_data(features_dir, config.data)
    log.info("training data: %d signal, %d background events, %d features (%s)", int(data.y.sum()),
             int((1 - data.y).sum()), len(data.features), config.data.feature_set)
    plan = planned_runs(runs)
    # multi-class networks train on the single-Higgs events too, each class weighted to a third; a binary
    # network's single-Higgs rejection is measured on those events, which it never trains on
    multiclass = (load_training_data(features_dir, config.data, multiclass=True)
                  if any(method_spec(m).multiclass for m in plan) else None)
    single_higgs = (multiclass.subset(multiclass.y == 2) if multiclass is not None
                    else load_single_higgs(features_dir, config.data))
    datasets = {m: multiclass if method_spec(m).multiclass else data for m in plan}
    held_out = {m: None if method_spec(m).multiclass else single_higgs for m in plan}
    samples = {m: training_samples(datasets[m], config) for m in plan}
    target = config.selection.flatness_target
    first = config.schedule.seed
    results, out_of_fold, lambda_choice = [], {}, {}
    for method, lambdas in plan.items():
        scan = []
        for lam in lambdas:
            result, scores = _trained(datasets[method], config, method, lam, first, seeds > 1, binning, out,
                                      samples[method], held_out[method])
            scan.append(result)
            out_of_fold[result.name] = scores
        chosen = choose(scan, target)
        if len(lambdas) > 1:
            lambda_choice[method] = LambdaChoice(chosen.lam, first, _rule(target), [
                ScanPoint(r.lam, r.metrics["r50"], r.metrics["ratio50"], r.metrics["ratio80"]) for r in scan])
        results += scan
        for seed in range(first + 1, first + seeds):
            result, scores = _trained(datasets[method], config, method, chosen.lam, seed, True, binning, out,
                                      samples[method], held_out[method])
            results.append(result)
            out_of_fold[result.name] = scores
    chosen = choose([r for r in results if r.seed == first], target)
    shutil.copy(chosen.model_file, out / "model.onnx")
    chosen_data = datasets[chosen.method]
    write_out_of_fold(out / "out_of_fold.parquet", chosen_data, out_of_fold[chosen.name])
    quantisation = quantized(out, chosen_data, binning) if int8 else None
    if all_events:
        model, _, _ = fit_network(chosen_data, config, chosen.method, chosen.lam, binning)  # config's seed: the first
        export_onnx([model], out / "model_all_events.onnx", config.data.feature_set, data.features,
                    {"ttH_adv.training_samples": {**samples[chosen.method], "n_folds": 1}}, all_events=True)
    table = format_table(results)
    summary = TrainingSummary(
        [TrainedEntry(r.method, r.lam, r.seed, r.name, str(r.model_file), TrainingMetrics.from_dict(r.metrics),
                      r.history, r.method not in lambda_choice or r.lam == lambda_choice[r.method].chosen)
         for r in results],
        Chosen(chosen.method, chosen.lam, chosen.seed, str(out / "model.onnx"), _rule(target)),
        config.data.feature_set, lambda_choice, list(range(first, first + seeds)), table, int(data.y.sum()),
        int((1 - data.y).sum()), binning.describe(), str(out / "out_of_fold.parquet"), all_events, quantisation)
    write_text(out / "results.json", json.dumps(summary.to_dict(), indent=1, default=float) + "\n")
    return summary


def _rule(target: float) -> str:
    return (f"JSD50 and JSD80 <= {target:g} x floor, then the highest R50; else the flattest (out-of-fold; epochs "
            "alike on validation)")
