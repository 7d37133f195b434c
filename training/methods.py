"""The adversarially decorrelated classifier and its baselines, behind one interface.

``DecorrelatedClassifier(config, method, lam).fit(X, y, protected, weights, validation)``
trains one model; ``predict(X)`` gives the signal score.  Methods:

* ``adversarial`` -- seed 000's min-max: the classifier minimises L_clf - lambda * L_adv while a
  Gaussian-mixture adversary minimises L_adv = -log q(m_yy | classifier output) on background
  (seeds 002/004).  The classifier's penalty is lambda * max(0, I_adv): the mutual information
  between score and m_yy that the adversary extracts, <log q(m|s)> - <log q_bar(m)>, where
  q_bar is the marginal the adversary itself implies (its mixture averaged over the batch's
  scores).  This is L_adv measured against the adversary's own no-information NLL, so the
  mixture's imperfect fit of the m_yy shape cannot hide sculpting; the floor at zero removes
  the reward for *fooling* a lagging adversary, which otherwise collapses the classifier.
  The adversary and the penalty see background-only batches (``batch_size`` background events
  drawn per step), not the ~10% background of a mixed batch.  Pretrain the classifier,
  pretrain the adversary, then alternate, with separate optimisers and learning rates,
  ``steps_per_classifier_step`` adversary updates per classifier update (seeds 002/003).  The
  adversary sees the classifier's logit by default: the DESIGN prototype showed a classifier
  hiding m_yy in the saturated tail of the sigmoid from an adversary fed the raw score.
* ``classifier`` -- the unconstrained classifier (lambda = 0, no adversary).
* ``drop-correlated`` -- the classifier without the features whose |Pearson correlation| with
  m_yy on the training background exceeds ``baselines.drop_correlation_max`` (as ATLAS did).
* ``reweight`` -- background weights reweighted so its m_yy distribution matches the signal's
  (seed 001's mass reweighting; with a narrow resonance it is the background that must take
  the signal's shape, since the signal has no support outside the peak).
* ``disco`` -- BCE plus alpha x distance-correlation^2 of score and m_yy on a background batch
  (DisCo).

Model selection (documented in README): after every epoch the validation set gives AUC, R50 and
the JSD at 50% signal efficiency with its floor.  The decorrelating methods (adversarial, DisCo)
keep the epoch with the lowest validation JSD50/floor: the validation background is a fifth of
what the out-of-fold JSD uses, too little to resolve sculpting at the 2x-floor level, and
"highest R50 among epochs under 2x the floor" kept picking epochs early in the adversarial
phase that were still sculpting (validation 1.4x, out-of-fold 3.9x).  The rejection-sculpting
trade-off is made across lambda, on the out-of-fold scores (``training.run.choose``).  The other
baselines take the epoch with the highest validation AUC.  Training stops after ``patience``
epochs without a new best.  The protected variable is generic: any array can stand in for m_yy.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np

from ttH_adv import metrics

from .config import TrainingConfig
from .data import Standardiser
from .models import (
    binary_cross_entropy,
    build_adversary,
    build_classifier,
    distance_correlation_squared,
    mixture_information,
    mixture_nll,
    standardised_mass,
    tf,
    weighted_mean,
)

log = logging.getLogger(__name__)

METHODS = ("adversarial", "classifier", "drop-correlated", "reweight", "disco")


@dataclass
class EpochRecord:
    epoch: int
    phase: str
    loss: float
    penalty: float          # mean decorrelation term: I_adv in nats (adversarial), dCor^2 (DisCo), else 0
    auc: float
    r50: float
    jsd50: float
    floor50: float
    ratio50: float
    seconds: float


DECORRELATING = ("adversarial", "disco")


def selection_key(record: EpochRecord, decorrelating: bool = True) -> tuple:
    """Sort key of the epoch-selection rule (the highest key wins).

    Decorrelating methods: the lowest validation JSD50/floor, then the highest R50.  The
    baselines that do not decorrelate are selected on classification alone (validation AUC),
    so the unconstrained classifier stays unconstrained.
    """
    if not decorrelating:
        return (record.auc,)
    return (-record.ratio50, record.r50)


def correlated_features(X: np.ndarray, mass: np.ndarray, names: list[str], threshold: float) -> list[str]:
    """Features whose |Pearson correlation| with m_yy exceeds the threshold."""
    corr = [abs(np.corrcoef(X[:, i], mass)[0, 1]) if X[:, i].std() > 0 else 0.0 for i in range(X.shape[1])]
    return [n for n, c in zip(names, corr, strict=True) if c > threshold]


def mass_reweighting(mass: np.ndarray, y: np.ndarray, weights: np.ndarray,
                     binning: metrics.MassBinning = metrics.DEFAULT_BINNING) -> np.ndarray:
    """Background weights scaled so the background m_yy histogram takes the signal's shape."""
    sig = metrics.mass_histogram(mass[y == 1], weights[y == 1], binning)
    bkg = metrics.mass_histogram(mass[y == 0], weights[y == 0], binning)
    ratio = np.divide(sig / sig.sum(), bkg / bkg.sum(), out=np.zeros_like(sig, dtype=float), where=bkg > 0)
    idx = np.clip(np.digitize(mass, binning.edges) - 1, 0, binning.bins - 1)
    out = weights.copy()
    bkg_rows = y == 0
    out[bkg_rows] = weights[bkg_rows] * ratio[idx[bkg_rows]]
    out[bkg_rows] *= weights[bkg_rows].sum() / out[bkg_rows].sum()
    return out


class DecorrelatedClassifier:
    """One classifier (and adversary) for one method and lambda."""

    def __init__(self, config: TrainingConfig, method: str = "adversarial", lam: float = 0.0,
                 feature_names: list[str] | None = None) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; known: {METHODS}")
        self.config = config
        self.method = method
        self.lam = float(lam) if method == "adversarial" else 0.0
        self.feature_names = feature_names
        self.kept: list[int] = []
        self.standardiser: Standardiser | None = None
        self.classifier = None
        self.adversary = None
        self.history: list[EpochRecord] = []

    # ------------------------------------------------------------------ fitting

    def fit(self, X: np.ndarray, y: np.ndarray, protected: np.ndarray, weights: np.ndarray,
            validation: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None) -> list[EpochRecord]:
        """Train on (X, y) decorrelating from ``protected``; validate on (X, y, protected, weights)."""
        cfg = self.config
        tf.random.set_seed(cfg.schedule.seed)
        names = self.feature_names or [f"f{i}" for i in range(X.shape[1])]
        dropped = set()
        if self.method == "drop-correlated":
            dropped = set(correlated_features(X[y == 0], protected[y == 0], names, cfg.baselines.drop_correlation_max))
        self.kept = [i for i, n in enumerate(names) if n not in dropped]
        self.dropped = sorted(dropped)
        if self.method == "reweight":
            weights = mass_reweighting(protected, y, weights)
        self.standardiser = Standardiser.fit(X)
        self.classifier = build_classifier(len(self.kept), cfg.classifier, cfg.schedule.seed)
        self.adversary = build_adversary(cfg.adversary, cfg.schedule.seed)
        self._build_steps()
        data = self._tensors(X, y, protected, weights)
        rng = np.random.default_rng(cfg.schedule.seed)
        if self.method == "adversarial":
            for epoch in range(cfg.schedule.pretrain_classifier_epochs):
                self._epoch(data, rng, "pretrain_classifier", epoch, validation)
            for epoch in range(cfg.schedule.pretrain_adversary_epochs):
                self._epoch(data, rng, "pretrain_adversary", epoch, validation)
        self._train_with_selection(data, rng, validation)
        return self.history

    def _train_with_selection(self, data, rng, validation) -> None:
        cfg = self.config
        phase = "adversarial" if self.method == "adversarial" else "train"
        best_key, best_weights, since_best = None, None, 0
        for epoch in range(cfg.schedule.epochs):
            record = self._epoch(data, rng, phase, epoch, validation)
            if record is None:
                continue
            key = selection_key(record, self.method in DECORRELATING)
            if best_key is None or key > best_key:
                best_key, best_weights, since_best = key, self.classifier.get_weights(), 0
                self.best_epoch = epoch
            else:
                since_best += 1
                if since_best >= cfg.schedule.patience:
                    log.info("early stop after epoch %d (best %d)", epoch, self.best_epoch)
                    break
        if best_weights is not None:
            self.classifier.set_weights(best_weights)

    def _tensors(self, X, y, protected, weights) -> dict[str, np.ndarray]:
        Xs = self.standardiser(X)[:, self.kept]
        return {"x": Xs.astype(np.float32), "y": y.astype(np.float32),
                "m": standardised_mass(protected.astype(np.float32)),
                "w": weights.astype(np.float32), "background_rows": np.flatnonzero(y == 0)}

    def _background_batch(self, data, rng) -> list:
        """batch_size background events drawn with replacement, for the adversary and the penalty."""
        rows = data["background_rows"]
        idx = rows[rng.integers(0, len(rows), self.config.schedule.batch_size)]
        return [tf.constant(data[k][idx]) for k in ("x", "m", "w")]

    def _build_steps(self) -> None:
        cfg = self.config
        clf, adv = self.classifier, self.adversary
        clf_opt = _adam(cfg.classifier.learning_rate)
        # Two timescales (seed 003): in the adversarial phase a slower classifier optimiser
        # faces the faster adversary.  Built eagerly so each traced step may use its own.
        clf_adv_opt = _adam(cfg.adversary.classifier_learning_rate)
        adv_opt = _adam(cfg.adversary.learning_rate)
        for optimiser, model in ((clf_opt, clf), (clf_adv_opt, clf), (adv_opt, adv)):
            optimiser.build(model.trainable_variables)
        use_logit = cfg.adversary.input == "logit"
        method, lam, alpha = self.method, self.lam, cfg.baselines.disco_alpha

        def adversary_input(logits):
            return logits[:, None] if use_logit else tf.sigmoid(logits)[:, None]

        def decorrelation_term(xb, mb, wb):
            """I_adv (adversarial) or dCor^2 (DisCo) of score and m_yy on a background batch."""
            # Inference-mode logits: the score that is cut on, and the one the adversary learnt.
            # With dropout active the adversary would see a scrambled score and find nothing.
            logits = clf(xb, training=False)[:, 0]
            if method == "adversarial":
                return mixture_information(adv(adversary_input(logits), training=False), mb, wb)
            return distance_correlation_squared(tf.sigmoid(logits), mb, wb)

        @tf.function
        def classifier_step(x, y, w, xb, mb, wb, penalised):
            with tf.GradientTape() as tape:
                loss = binary_cross_entropy(y, clf(x, training=True)[:, 0], w)
                term = decorrelation_term(xb, mb, wb) if penalised else tf.constant(0.0)
                total = loss + (lam * tf.nn.relu(term) if method == "adversarial" else alpha * term)
            grads = tape.gradient(total, clf.trainable_variables)
            # a Python bool: one trace per phase; the adversarial phase has its own slower optimiser
            optimiser = clf_adv_opt if penalised and method == "adversarial" else clf_opt
            optimiser.apply_gradients(zip(grads, clf.trainable_variables, strict=True))
            return loss, term

        @tf.function
        def adversary_step(x, m, w):
            logits = clf(x, training=False)[:, 0]
            with tf.GradientTape() as tape:
                loss = weighted_mean(mixture_nll(adv(adversary_input(logits), training=True), m), w)
            grads = tape.gradient(loss, adv.trainable_variables)
            adv_opt.apply_gradients(zip(grads, adv.trainable_variables, strict=True))
            return loss

        self._classifier_step, self._adversary_step = classifier_step, adversary_step
        self._decorrelation_term = decorrelation_term

    def _epoch(self, data, rng, phase: str, epoch: int, validation) -> EpochRecord | None:
        start = time.perf_counter()
        n = len(data["y"])
        batch = self.config.schedule.batch_size
        order = rng.permutation(n)
        losses, terms = [], []
        penalised = phase == "adversarial" or self.method == "disco"
        adv_steps = self.config.adversary.steps_per_classifier_step if phase == "adversarial" else 1
        for first in range(0, n, batch):
            if phase in ("pretrain_adversary", "adversarial"):
                for _ in range(adv_steps):
                    adv_loss = self._adversary_step(*self._background_batch(data, rng))
                if phase == "pretrain_adversary":
                    losses.append(float(adv_loss))
                    continue
            idx = order[first:first + batch]
            background = self._background_batch(data, rng) if penalised else (None, None, None)
            loss, term = self._classifier_step(*[tf.constant(data[k][idx]) for k in ("x", "y", "w")], *background,
                                               penalised)
            losses.append(float(loss))
            terms.append(float(term))
        seconds = time.perf_counter() - start
        penalty = float(np.mean(terms)) if terms else 0.0
        return self._validate(validation, phase, epoch, float(np.mean(losses)), penalty, seconds)

    def _validate(self, validation, phase: str, epoch: int, loss: float, penalty: float,
                  seconds: float) -> EpochRecord | None:
        if validation is None:
            return None
        Xv, yv, mv, wv = validation
        selection = self.config.selection
        binning = metrics.MassBinning(bins=selection.jsd_bins)
        m = evaluate_scores(self.predict(Xv), yv, mv, wv, toys=selection.jsd_toys, binning=binning)
        record = EpochRecord(epoch, phase, loss, penalty, m["auc"], m["r50"], m["jsd50"], m["floor50"], m["ratio50"],
                             seconds)
        self.history.append(record)
        log.info("%s %-20s epoch %2d loss %.4f penalty %.4f AUC %.3f R50 %.1f JSD50/floor %.1f (%.1f s)",
                 self.method, phase, epoch, loss, penalty, record.auc, record.r50, record.ratio50, seconds)
        return record

    # ------------------------------------------------------------------ using

    def logits(self, X: np.ndarray, batch: int = 65536) -> np.ndarray:
        """Classifier logits for raw (unstandardised) features."""
        Xs = self.standardiser(X)[:, self.kept]
        out = [self.classifier(Xs[i:i + batch], training=False).numpy()[:, 0] for i in range(0, len(Xs), batch)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Signal score in [0, 1]."""
        return 1.0 / (1.0 + np.exp(-self.logits(X).astype(np.float64)))

    def decorrelation_penalty(self, X: np.ndarray, protected: np.ndarray, weights: np.ndarray) -> float:
        """The training penalty's term on these background events: I_adv in nats, or DisCo's dCor^2.

        Computed as in training, on inference-mode scores; it is pairwise in the events, so pass
        a few thousand.
        """
        if self.method not in DECORRELATING:
            raise ValueError(f"method {self.method!r} has no decorrelation penalty")
        Xs = self.standardiser(X)[:, self.kept]
        m = standardised_mass(protected.astype(np.float32))
        return float(self._decorrelation_term(tf.constant(Xs), tf.constant(m), tf.constant(weights, tf.float32)))

    def history_dicts(self) -> list[dict]:
        """The training history as plain dicts."""
        return [asdict(r) for r in self.history]


def _adam(learning_rate: float):
    import keras

    return keras.optimizers.Adam(learning_rate)


def evaluate_scores(scores: np.ndarray, y: np.ndarray, mass: np.ndarray, weights: np.ndarray,
                    toys: int = 20, binning: metrics.MassBinning = metrics.DEFAULT_BINNING) -> dict[str, float]:
    """AUC, R50, R80 and background sculpting at the 50% and 80% signal-efficiency cuts."""
    result = {"auc": metrics.auc(scores, y, weights)}
    bkg = y == 0
    for eff in (50, 80):
        eff_b, threshold = metrics.background_efficiency_at(scores, y, eff / 100, weights)
        result[f"r{eff}"] = 1.0 / eff_b if eff_b > 0 else float("inf")
        s = metrics.jsd_at_signal_efficiency(scores[bkg], mass[bkg], threshold, weights[bkg], binning, toys)
        result.update({f"jsd{eff}": s["jsd"], f"floor{eff}": s["floor"], f"floor{eff}_std": s["floor_std"],
                       f"ratio{eff}": s["ratio"], f"inverse_jsd{eff}": s["inverse_jsd"],
                       f"threshold{eff}": threshold})
    result["jsd_binning"] = metrics.DEFAULT_BINNING.describe()
    result.update({f"{k}_correlation": v for k, v in metrics.correlations(scores[bkg], mass[bkg], weights[bkg]).items()})
    return result
