"""The decorrelated classifier and its baselines: one training loop, one small class per method.

``DecorrelatedClassifier(config, method, lam).fit(X, y, protected, weights, validation)`` trains
one model; ``predict(X, protected)`` gives the signal score.  The protected variable is any real
number per event (m_yy in the analysis): it is standardised with the mean and spread of the
training background, and its JSD binning is given (m_yy: the configured window) or taken from
quantiles of the training background.  Methods (registered by name in ``training.registry``):

* ``classifier`` (``Unconstrained``) -- the unconstrained classifier.
* ``drop-correlated`` (``DropCorrelated``) -- without the features whose |Pearson correlation|
  with the protected variable on the training background exceeds ``baselines.drop_correlation_max``
  (as ATLAS did).
* ``reweight`` (``Reweight``) -- background weights reweighted so its protected-variable
  distribution takes the signal's shape (seed 001; with a narrow resonance it is the background
  that must take the signal's shape, the signal has no support outside the peak).
* ``disco`` (``DisCo``) -- BCE plus lambda x distance-correlation^2 of score and protected variable
  on a background batch (the paper's alpha).
* ``mode`` / ``mode-linear`` (``MomentDecomposition``, ``MomentDecompositionLinear``) -- BCE plus
  lambda x L_MoDe (Kitouni, Nachman, Weisser & Williams, arXiv:2010.09745): the background's
  conditional score CDF held to its Legendre expansion in the protected variable of order 0 (flat
  background efficiency at every cut) or 1 (linear in m_yy).  The modeloss package's TensorFlow
  version imports Keras 2's ``tensorflow.keras.preprocessing`` and ignores event weights, so the
  loss is written here from the paper (``training.models.moment_decomposition_loss``).
* ``adversarial`` (``Adversarial``) -- the reference analysis's min-max: the classifier minimises
  L_clf - lambda * L_adv while a Gaussian-mixture adversary minimises L_adv = -log q(z | logit) on
  background (seeds 002/004).  The penalty is lambda * max(0, I_adv), the mutual information the
  adversary extracts, <log q(z|s)> - <log q_bar(z)>, with q_bar the marginal the adversary itself
  implies: a mixture that misfits the marginal cannot hide sculpting, and the floor at zero
  removes the reward for fooling a lagging adversary.  Background-only batches, inference-mode
  logits, pretrain the classifier, pretrain the adversary, then alternate with two timescales
  (seeds 002/003).
* ``ddt`` (``FixedEfficiency``) -- seed 002's fixed-efficiency baseline (DDT / k-NN style): the
  unconstrained classifier's logit replaced by its percentile among background events at the
  same value of the protected variable, so a cut on it keeps the background efficiency flat in
  that variable.  The map holds quantile nodes of the logit in quantile bins of the protected
  variable, linear between nodes and interpolated between bin centres, and lives inside the
  exported graph.  It is fitted on the validation background, which the network did not train
  on: fitted on the training background it is flat for those events only (3M sample: one cut's
  test-fold efficiency 0.20/0.26/0.35/0.22 across m_yy quartiles, 0.20 for the training events).
  Its training also reports the ceiling (``training.run.fixed_efficiency_ceiling``): the same
  networks with maps cross-fitted on halves of their own test fold, 2.5x the statistics.

Model selection, one rule for every method (``selection_key``): after every epoch the validation set
gives AUC, R50, JSD/floor at 50% and 80% signal efficiency and the loss.  Decorrelating methods keep,
among the epochs within ``selection.flatness_target`` x the floor at every one of the
``selection.epoch_working_points`` (and with a validation AUC of at least ``selection.min_auc``),
the one with the best validation R50; where none is, the flattest, flagged
(``best_within_target``).  The others keep their lowest validation loss.  Training stops after
``patience`` epochs without a new best.  The same target chooses lambda across a scan, on
out-of-fold scores (``training.run.choose``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np

from ttH_adv.stats import metrics

from .config import TrainingConfig
from .data import BINARY_CLASSES, MULTICLASS_CLASSES, SIGNAL_CLASS, Standardiser
from .models import (
    binary_cross_entropy,
    build_adversary,
    build_classifier,
    distance_correlation_squared,
    mixture_information,
    mixture_nll,
    moment_decomposition_loss,
    softmax_cross_entropy,
    tf,
    weighted_mean,
)
from .registry import method_spec

log = logging.getLogger(__name__)


@dataclass
class EpochRecord:
    epoch: int
    phase: str
    loss: float
    penalty: float          # mean decorrelation term: I_adv in nats (adversarial), dCor^2 (DisCo), L_MoDe, else 0
    auc: float
    r50: float
    jsd50: float
    floor50: float
    ratio50: float
    seconds: float
    penalty_weight: float = 0.0  # lambda x the ramp's factor in this epoch (0 where unpenalised)
    ratio80: float = float("nan")
    validation_loss: float = float("nan")  # weighted BCE on the validation split

    def sculpting(self, working_points: tuple[int, ...] = (50,)) -> float:
        """The worst validation JSD/floor over the given signal efficiencies (%)."""
        return max(self.ratio50 if point == 50 else self.ratio80 for point in working_points)


@dataclass(frozen=True)
class Phase:
    name: str
    epochs: int
    selects: bool = False         # epochs of this phase compete in model selection (with early stopping)
    trains_classifier: bool = True
    penalised: bool = False       # the classifier loss carries the decorrelation term
    adversary_steps: int = 0      # adversary updates before each classifier batch
    ramp_epochs: int = 0          # penalised: epochs over which lambda rises linearly from 0 (``ramp_factor``)


def ramp_factor(epoch: int, ramp_epochs: int) -> float:
    """The share of lambda a penalised epoch applies: e / ramp_epochs up to 1 (1 throughout without a ramp)."""
    return 1.0 if ramp_epochs <= 0 else min(1.0, epoch / ramp_epochs)


def within_target(record: EpochRecord, target: float, min_auc: float = 0.0,
                  working_points: tuple[int, ...] = (50, 80)) -> bool:
    """Whether an epoch meets the flatness target: validation JSD/floor at most ``target`` at every working point,
    and it still classifies (validation AUC >= ``min_auc``: a collapsed, near-constant score sculpts nothing)."""
    return record.auc >= min_auc and record.sculpting(working_points) <= target


def selection_key(record: EpochRecord, decorrelating: bool = True, min_auc: float = 0.0,
                  working_points: tuple[int, ...] = (50, 80), target: float = 1.5) -> tuple:
    """Sort key of the one epoch rule (the highest key wins).

    Decorrelating methods: among the epochs within the flatness target (``within_target``), the best
    validation R50; where none is, the flattest (the worst validation JSD/floor over the working
    points), among those that still classify.  So a method keeps the most rejecting epoch that is
    flat enough, not merely the flattest one (which favours the first epochs, before the network
    has learned much).  The baselines that do not decorrelate keep their lowest validation loss,
    so the unconstrained classifier stays unconstrained.
    """
    if not decorrelating:
        return (-record.validation_loss,)
    if within_target(record, target, min_auc, working_points):
        return (2, record.r50)
    return (int(record.auc >= min_auc), -record.sculpting(working_points), record.r50)


def correlated_features(X: np.ndarray, protected: np.ndarray, names: list[str], threshold: float) -> list[str]:
    """Features whose |Pearson correlation| with the protected variable exceeds the threshold."""
    corr = [abs(np.corrcoef(X[:, i], protected)[0, 1]) if X[:, i].std() > 0 else 0.0 for i in range(X.shape[1])]
    return [n for n, c in zip(names, corr, strict=True) if c > threshold]


def mass_reweighting(protected: np.ndarray, y: np.ndarray, weights: np.ndarray,
                     binning: metrics.Binning) -> np.ndarray:
    """Background weights scaled so the background's protected-variable histogram takes the signal's shape."""
    sig = metrics.mass_histogram(protected[y == 1], weights[y == 1], binning)
    bkg = metrics.mass_histogram(protected[y == 0], weights[y == 0], binning)
    ratio = np.divide(sig / sig.sum(), bkg / bkg.sum(), out=np.zeros_like(sig, dtype=float), where=bkg > 0)
    idx = np.clip(np.digitize(protected, binning.edges) - 1, 0, binning.bins - 1)
    out = weights.copy()
    bkg_rows = y == 0
    out[bkg_rows] = weights[bkg_rows] * ratio[idx[bkg_rows]]
    out[bkg_rows] *= weights[bkg_rows].sum() / out[bkg_rows].sum()
    return out


# --------------------------------------------------------------------------- methods


class Unconstrained:
    """The plain classifier.  Subclasses change one thing each: features, weights, loss or output."""

    name = "classifier"
    decorrelating = False     # epochs selected on validation JSD (True) or AUC (False)
    uses_protected_input = False  # the exported graph takes the protected variable as an input
    reports_ceiling = True        # its training also reports the ceiling: this network made flat in m_yy
    unconstrained = True          # the plain network, whose ceiling every method on its features is held to
    classes: tuple[str, ...] = BINARY_CLASSES  # the network's classes, in the order of the labels y

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.unconstrained = cls.__dict__.get("unconstrained", False)  # a subclass changes one thing: it constrains

    def __init__(self, config: TrainingConfig, lam: float = 0.0) -> None:
        self.config = config
        self.lam = float(lam) if method_spec(self.name).takes_lambda else 0.0

    def dropped_features(self, X_bkg: np.ndarray, protected_bkg: np.ndarray, names: list[str]) -> list[str]:
        """Features left out of the network (none)."""
        return []

    def training_weights(self, protected: np.ndarray, y: np.ndarray, weights: np.ndarray,
                         binning: metrics.Binning) -> np.ndarray:
        """Per-event training weights (unchanged)."""
        return weights

    def phases(self) -> list[Phase]:
        """The training schedule."""
        return [Phase("train", self.config.schedule.epochs, selects=True)]

    def build(self, classifier) -> None:
        """Build method-specific networks and optimisers around the classifier (none)."""

    def penalised_learning_rate(self) -> float:
        """The classifier's learning rate in penalised phases."""
        return self.config.classifier.learning_rate

    def penalty(self, logits: tf.Tensor, protected: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        """The decorrelation term on a background batch (penalised methods only)."""
        raise ValueError(f"method {self.name!r} has no decorrelation penalty")

    def penalty_loss(self, term: tf.Tensor) -> tf.Tensor:
        """What the decorrelation term adds to the classifier loss."""
        return tf.constant(0.0)

    def adversary_step(self, logits: tf.Tensor, protected: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        """One adversary update (adversarial method only)."""
        raise NotImplementedError

    def fit_output(self, logits_bkg: np.ndarray, protected_bkg: np.ndarray, weights_bkg: np.ndarray) -> None:
        """Fit a map of the logit applied after training (none)."""

    def score(self, logits: tf.Tensor, protected: tf.Tensor | None) -> tf.Tensor:
        """The signal score in [0, 1] from the logit (TensorFlow ops: also the exported graph's)."""
        return tf.sigmoid(logits)

    def discriminant(self, outputs: tf.Tensor) -> tf.Tensor:
        """The one logit every penalty, metric and score reads, from the network's outputs [N, 1]."""
        return outputs[:, 0]

    def classification_loss(self, labels: tf.Tensor, outputs: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        """The classifier's loss on a batch: binary cross-entropy of signal against background."""
        return binary_cross_entropy(labels, outputs[:, 0], weights)

    def probabilities(self, outputs: tf.Tensor) -> tf.Tensor | None:
        """Every class's probability [N, classes] (multi-class networks only; None for a binary one)."""
        return None

    def metadata(self) -> dict:
        """Method-specific facts for the model file."""
        return {}


class DropCorrelated(Unconstrained):
    name = "drop-correlated"
    reports_ceiling = False

    def dropped_features(self, X_bkg: np.ndarray, protected_bkg: np.ndarray, names: list[str]) -> list[str]:
        """Features correlated with the protected variable on the training background."""
        return correlated_features(X_bkg, protected_bkg, names, self.config.baselines.drop_correlation_max)


class Reweight(Unconstrained):
    name = "reweight"
    reports_ceiling = False

    def training_weights(self, protected: np.ndarray, y: np.ndarray, weights: np.ndarray,
                         binning: metrics.Binning) -> np.ndarray:
        """Background reweighted to the signal's protected-variable shape."""
        return mass_reweighting(protected, y, weights, binning)


class DisCo(Unconstrained):
    name = "disco"
    decorrelating = True
    reports_ceiling = False

    def phases(self) -> list[Phase]:
        """Penalised from the first epoch."""
        return [Phase("train", self.config.schedule.epochs, selects=True, penalised=True)]

    def penalty(self, logits: tf.Tensor, protected: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        """dCor^2 of score and protected variable."""
        return distance_correlation_squared(tf.sigmoid(logits), protected, weights)

    def penalty_loss(self, term: tf.Tensor) -> tf.Tensor:
        """lambda x dCor^2."""
        return self.lam * term


class MomentDecomposition(DisCo):
    """MoDe, order 0: the background's conditional score CDF made flat in the protected variable.

    DisCo's schedule and lambda x term (penalised from the first epoch); only the term differs."""

    name = "mode"
    order = 0

    def penalty(self, logits: tf.Tensor, protected: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        """L_MoDe of the score on a background batch (``training.models.moment_decomposition_loss``)."""
        settings = self.config.mode
        return moment_decomposition_loss(tf.sigmoid(logits), protected, weights, self.order, settings.mass_bins,
                                         settings.score_bins)

    def metadata(self) -> dict:
        """The order and binning of the MoDe term."""
        return {"mode_order": self.order, "mode_mass_bins": self.config.mode.mass_bins,
                "mode_score_bins": self.config.mode.score_bins}


class MomentDecompositionLinear(MomentDecomposition):
    """MoDe, order 1: the conditional CDF may vary linearly in the protected variable ("mildly mass-dependent")."""

    name = "mode-linear"
    order = 1


class Adversarial(Unconstrained):
    name = "adversarial"
    decorrelating = True
    reports_ceiling = False

    def __init__(self, config: TrainingConfig, lam: float = 0.0) -> None:
        super().__init__(config, lam)
        self.adversary = None
        self._optimiser = None

    def phases(self) -> list[Phase]:
        """Pretrain the classifier, pretrain the adversary, then alternate."""
        schedule = self.config.schedule
        return [Phase("pretrain_classifier", schedule.pretrain_classifier_epochs),
                Phase("pretrain_adversary", schedule.pretrain_adversary_epochs, trains_classifier=False,
                      adversary_steps=1),
                Phase("adversarial", schedule.epochs, selects=True, penalised=True,
                      adversary_steps=self.config.adversary.steps_per_classifier_step,
                      ramp_epochs=self.config.adversary.lambda_ramp_epochs)]

    def build(self, classifier) -> None:
        """The mixture-density adversary and its (faster) optimiser."""
        self.adversary = build_adversary(self.config.adversary, self.config.schedule.seed)
        self._optimiser = _adam(self.config.adversary.learning_rate)
        self._optimiser.build(self.adversary.trainable_variables)

    def penalised_learning_rate(self) -> float:
        """Two timescales (seed 003): a slower classifier faces the faster adversary."""
        return self.config.adversary.classifier_learning_rate

    def _adversary_input(self, logits: tf.Tensor) -> tf.Tensor:
        # The logit keeps the sigmoid's saturated tail resolvable (DESIGN prototype).
        return logits[:, None] if self.config.adversary.input == "logit" else tf.sigmoid(logits)[:, None]

    def penalty(self, logits: tf.Tensor, protected: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        """I_adv: the information about the protected variable the adversary extracts, in nats."""
        return mixture_information(self.adversary(self._adversary_input(logits), training=False), protected, weights,
                                   self.config.adversary.marginal_conditions or None)

    def penalty_loss(self, term: tf.Tensor) -> tf.Tensor:
        """lambda x max(0, I_adv)."""
        return self.lam * tf.nn.relu(term)

    def adversary_step(self, logits: tf.Tensor, protected: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        """One update of the adversary's NLL of the protected variable given the (fixed) logit."""
        with tf.GradientTape() as tape:
            params = self.adversary(self._adversary_input(logits), training=True)
            loss = weighted_mean(mixture_nll(params, protected), weights)
        grads = tape.gradient(loss, self.adversary.trainable_variables)
        self._optimiser.apply_gradients(zip(grads, self.adversary.trainable_variables, strict=True))
        return loss

    def metadata(self) -> dict:
        """The adversary's settings."""
        return {"adversary_input": self.config.adversary.input, "components": self.config.adversary.components}


class Multiclass(Unconstrained):
    """A softmax over continuum, ttH and single Higgs (``training.data.MULTICLASS_CLASSES``): the single-Higgs
    processes peak at 125 GeV as the signal does, and a node of their own lets the network learn what tells them
    apart.  Everything downstream reads one logit, d = ln[p_ttH / (p_H + p_continuum)], so the score is p_ttH and
    a penalty acts on the continuum events' d; the exported graph carries every class's probability as well."""

    name = "multiclass"
    reports_ceiling = False
    classes = MULTICLASS_CLASSES

    def discriminant(self, outputs: tf.Tensor) -> tf.Tensor:
        """d = z_ttH - log(exp z_continuum + exp z_H): the logit of p_ttH."""
        signal = self.classes.index(SIGNAL_CLASS)
        others = [i for i in range(len(self.classes)) if i != signal]
        return outputs[:, signal] - tf.reduce_logsumexp(tf.gather(outputs, others, axis=1), axis=1)

    def classification_loss(self, labels: tf.Tensor, outputs: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
        """Categorical cross-entropy over the classes."""
        return softmax_cross_entropy(labels, outputs, weights)

    def probabilities(self, outputs: tf.Tensor) -> tf.Tensor:
        """The softmax over the classes."""
        return tf.nn.softmax(outputs, axis=1)

    def metadata(self) -> dict:
        """The classes, in the order of the probabilities output."""
        return {"classes": list(self.classes)}


class MulticlassAdversarial(Multiclass, Adversarial):
    """The multi-class network with the mass adversary on its continuum events' d."""

    name = "multiclass-adversarial"
    reports_ceiling = False

    def metadata(self) -> dict:
        """The classes and the adversary's settings."""
        return {**Multiclass.metadata(self), **Adversarial.metadata(self)}


class FixedEfficiency(Unconstrained):
    """DDT / k-NN style: the logit's background percentile at the event's protected-variable value."""

    name = "ddt"
    uses_protected_input = True
    reports_ceiling = True   # training.run adds the cross-fitted ceiling (``fixed_efficiency_ceiling``)

    def __init__(self, config: TrainingConfig, lam: float = 0.0) -> None:
        super().__init__(config, lam)
        self.centres: np.ndarray | None = None  # [bins] weighted median of the protected variable in each bin
        self.nodes: np.ndarray | None = None    # [bins, levels] logit quantiles of the background in each bin

    def fit_output(self, logits_bkg: np.ndarray, protected_bkg: np.ndarray, weights_bkg: np.ndarray,
                   bins: int | None = None) -> None:
        """Quantile nodes of the background logit in each quantile bin of the protected variable.

        Between bin centres the nodes are interpolated linearly in the protected variable: the
        unconstrained logit moves by several units across one bin near the m_yy peak, and a
        step at each bin edge sculpts (3M sample, 20 bins: JSD50 4.3x the floor stepped, 2.5x
        interpolated)."""
        baselines = self.config.baselines
        edges = metrics.Binning.quantiles(protected_bkg, bins or baselines.ddt_bins).edges
        levels = np.linspace(0.0, 1.0, baselines.ddt_levels)
        index = np.clip(np.searchsorted(edges[1:-1], protected_bkg, side="right"), 0, len(edges) - 2)
        occupied = [b for b in range(len(edges) - 1) if np.any(index == b)]
        nodes = [_weighted_quantiles(logits_bkg[index == b], weights_bkg[index == b], levels) for b in occupied]
        centres = [_weighted_quantiles(protected_bkg[index == b], weights_bkg[index == b], np.array([0.5]))[0]
                   for b in occupied]
        if len(occupied) == 1:  # one bin: the same nodes everywhere
            centres, nodes = [centres[0], centres[0] + 1.0], nodes * 2
        self.centres = np.asarray(centres, dtype=np.float32)
        # strictly increasing nodes: the interpolation divides by their spacing
        self.nodes = (np.asarray(nodes) + np.arange(len(levels)) * 1e-4).astype(np.float32)

    def score(self, logits: tf.Tensor, protected: tf.Tensor | None) -> tf.Tensor:
        """Fraction of the map's background below this logit at the event's protected value (before the
        map is fitted: the sigmoid, which epoch selection uses)."""
        if self.nodes is None:
            return tf.sigmoid(logits)
        if protected is None:
            raise ValueError("the ddt method needs the protected variable to score events")
        # float32 throughout, as in the exported graph
        logits, protected = tf.cast(logits, tf.float32), tf.cast(protected, tf.float32)
        centres, all_nodes = tf.constant(self.centres), tf.constant(self.nodes)
        at = tf.clip_by_value(protected, centres[0], centres[-1])
        segment = tf.reduce_sum(tf.cast(at[:, None] >= centres[None, 1:-1], tf.int32), axis=1)
        low, high = tf.gather(centres, segment), tf.gather(centres, segment + 1)
        step = ((at - low) / tf.maximum(high - low, 1e-6))[:, None]  # equal centres (repeated values): 0
        nodes = (1.0 - step) * tf.gather(all_nodes, segment) + step * tf.gather(all_nodes, segment + 1)  # [N, levels]
        low, width = nodes[:, :-1], nodes[:, 1:] - nodes[:, :-1]
        fraction = tf.clip_by_value((logits[:, None] - low) / width, 0.0, 1.0)
        return tf.reduce_sum(fraction, axis=1) / float(self.nodes.shape[1] - 1)

    def metadata(self) -> dict:
        """The map's size and where its bins sit."""
        return {"ddt_bins": int(self.nodes.shape[0]), "ddt_levels": int(self.nodes.shape[1]),
                "ddt_centres": self.centres.tolist()}


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles of weighted values (negative weights count as zero)."""
    if len(values) == 0:
        raise ValueError("a protected-variable bin holds no training background")
    order = np.argsort(values)
    cumulative = np.cumsum(np.maximum(weights[order], 0.0))
    position = (cumulative - 0.5 * np.maximum(weights[order], 0.0)) / cumulative[-1]
    return np.interp(levels, position, values[order])




# --------------------------------------------------------------------------- the shared loop


class DecorrelatedClassifier:
    """One classifier for one method and lambda, trained by one loop whatever the method."""

    def __init__(self, config: TrainingConfig, method: str = "adversarial", lam: float = 0.0,
                 feature_names: list[str] | None = None) -> None:
        self.config = config
        self.strategy = method_spec(method).load()(config, lam)
        self.feature_names = feature_names
        self.kept: list[int] = []
        self.dropped: list[str] = []
        self.standardiser: Standardiser | None = None
        self.protected_scaler: Standardiser | None = None
        self.binning: metrics.Binning | None = None
        self.classifier = None
        self.history: list[EpochRecord] = []
        self.best_epoch: int | None = None
        self.best_within_target = True  # False: no epoch met the flatness target, the flattest was kept

    @property
    def method(self) -> str:
        """The method's name."""
        return self.strategy.name

    @property
    def lam(self) -> float:
        """The adversary strength (0 for the other methods)."""
        return self.strategy.lam

    # ------------------------------------------------------------------ fitting

    def fit(self, X: np.ndarray, y: np.ndarray, protected: np.ndarray, weights: np.ndarray,
            validation: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
            binning: metrics.Binning | None = None) -> list[EpochRecord]:
        """Train on (X, y) decorrelating from ``protected``; validate on (X, y, protected, weights).

        ``binning`` is the protected variable's JSD binning (m_yy: the configured window); by
        default quantile bins of the training background.
        """
        cfg, method = self.config, self.strategy
        tf.random.set_seed(cfg.schedule.seed)
        names = self.feature_names or [f"f{i}" for i in range(X.shape[1])]
        bkg = y == 0
        self.binning = binning or metrics.Binning.quantiles(protected[bkg], cfg.selection.quantile_bins)
        self.dropped = sorted(method.dropped_features(X[bkg], protected[bkg], names))
        self.kept = [i for i, n in enumerate(names) if n not in self.dropped]
        weights = method.training_weights(protected, y, weights, self.binning)
        self.standardiser = Standardiser.fit(X)
        self.protected_scaler = Standardiser.fit(protected[bkg, None])
        classes = len(method.classes)
        self.classifier = build_classifier(len(self.kept), cfg.classifier, cfg.schedule.seed,
                                           1 if classes == 2 else classes)
        method.build(self.classifier)
        data = self._tensors(X, y, protected, weights)
        self._build_steps(data)
        rng = np.random.default_rng(cfg.schedule.seed)
        for phase in method.phases():
            self._run_phase(phase, data, rng, validation)
        # A map of the output is fitted on events the network did not train on, where given.
        Xh, yh, ph, wh = validation if validation is not None else (X, y, protected, weights)
        method.fit_output(self.logits(Xh[yh == 0]), ph[yh == 0], wh[yh == 0])
        return self.history

    def _run_phase(self, phase: Phase, data, rng, validation) -> None:
        """Epochs of one phase; a selecting phase keeps its best epoch and stops early."""
        best_key, best_weights, since_best = None, None, 0
        for epoch in range(phase.epochs):
            record = self._epoch(phase, data, rng, epoch, validation)
            if not phase.selects or record is None:
                continue
            selection = self.config.selection
            key = selection_key(record, self.strategy.decorrelating, selection.min_auc,
                                selection.epoch_working_points, selection.flatness_target)
            if best_key is None or key > best_key:
                best_key, best_weights, since_best = key, self.classifier.get_weights(), 0
                self.best_epoch = epoch
                self.best_within_target = (not self.strategy.decorrelating
                                           or within_target(record, selection.flatness_target, selection.min_auc,
                                                            selection.epoch_working_points))
            else:
                since_best += 1
                if since_best >= self.config.schedule.patience:
                    log.info("early stop after epoch %d (best %d)", epoch, self.best_epoch)
                    break
        if best_weights is not None:
            self.classifier.set_weights(best_weights)

    def _scaled_protected(self, protected: np.ndarray) -> np.ndarray:
        return self.protected_scaler(np.asarray(protected, dtype=np.float64)[:, None])[:, 0]

    def _tensors(self, X, y, protected, weights) -> dict[str, np.ndarray]:
        Xs = self.standardiser(X)[:, self.kept]
        return {"x": Xs.astype(np.float32), "y": y.astype(np.float32), "m": self._scaled_protected(protected),
                "w": weights.astype(np.float32), "background_rows": np.flatnonzero(y == 0)}

    def _build_steps(self, data: dict[str, np.ndarray]) -> None:
        """One compiled step per classifier batch: the adversary's updates, then the classifier's.

        The training background lives in the graph and its batches are drawn there (a seeded
        ``tf.random.Generator``, with replacement), so a batch costs one call and no host round
        trip however many adversary updates it holds."""
        clf, method, cfg = self.classifier, self.strategy, self.config
        plain_opt = _adam(cfg.classifier.learning_rate)
        penalised_opt = _adam(method.penalised_learning_rate())
        for optimiser in (plain_opt, penalised_opt):
            optimiser.build(clf.trainable_variables)
        rows = data["background_rows"]
        background = [tf.constant(data[k][rows]) for k in ("x", "m", "w")]
        sampler = tf.random.Generator.from_seed(cfg.schedule.seed)
        size = cfg.schedule.batch_size
        self._ramp = tf.Variable(1.0, trainable=False, dtype=tf.float32)  # set per epoch: no retrace

        def background_batch(batches: int = 1):
            idx = sampler.uniform((batches * size,), 0, len(rows), dtype=tf.int64)
            return [tf.gather(t, idx) for t in background]

        def decorrelation_term(xb, mb, wb):
            # Inference-mode logits: the score that is cut on.  With dropout active an adversary
            # would see a scrambled score and find nothing.
            return method.penalty(method.discriminant(clf(xb, training=False)), mb, wb)

        def batch_step(x, y, w, adversary_steps, trains_classifier, penalised):
            # Python ints and bools: one graph per kind of phase, the adversary's updates unrolled
            adversary_loss = tf.constant(0.0)
            if adversary_steps:
                # the classifier is fixed while the adversary steps: one pass gives every step's logits
                xb, mb, wb = background_batch(adversary_steps)
                logits = method.discriminant(clf(xb, training=False))
                for i in range(adversary_steps):
                    step = slice(i * size, (i + 1) * size)
                    adversary_loss = method.adversary_step(logits[step], mb[step], wb[step])
            if not trains_classifier:
                return adversary_loss, tf.constant(0.0)
            with tf.GradientTape() as tape:
                loss = method.classification_loss(y, clf(x, training=True), w)
                term = decorrelation_term(*background_batch()) if penalised else tf.constant(0.0)
                total = loss + (self._ramp * method.penalty_loss(term) if penalised else 0.0)
            grads = tape.gradient(total, clf.trainable_variables)
            optimiser = penalised_opt if penalised else plain_opt  # each kind of phase its own optimiser
            optimiser.apply_gradients(zip(grads, clf.trainable_variables, strict=True))
            return loss, term

        # One compiled step per kind of phase, for any batch length: the epoch's last, shorter batch needs no
        # second trace (tracing is a second a graph here, a fifth of a small training's time).
        signature = [tf.TensorSpec([None, data["x"].shape[1]], tf.float32), tf.TensorSpec([None], tf.float32),
                     tf.TensorSpec([None], tf.float32)]
        compiled = {}

        def train_batch(x, y, w, adversary_steps, trains_classifier, penalised):
            kind = (adversary_steps, trains_classifier, penalised)
            if kind not in compiled:
                compiled[kind] = tf.function(lambda x, y, w: batch_step(x, y, w, *kind), input_signature=signature)
            return compiled[kind](x, y, w)

        self._train_batch, self._decorrelation_term = train_batch, decorrelation_term

    def _epoch(self, phase: Phase, data, rng, epoch: int, validation) -> EpochRecord | None:
        start = time.perf_counter()
        ramp = ramp_factor(epoch, phase.ramp_epochs) if phase.penalised else 0.0
        self._ramp.assign(ramp)
        n = len(data["y"])
        batch = self.config.schedule.batch_size
        order = rng.permutation(n)
        results = []
        for first in range(0, n, batch):
            idx = order[first:first + batch]
            results.append(self._train_batch(*[tf.constant(data[k][idx]) for k in ("x", "y", "w")],
                                             phase.adversary_steps, phase.trains_classifier, phase.penalised))
        losses, terms = (np.array([float(r[i]) for r in results]) for i in (0, 1))  # read once, after the epoch
        seconds = time.perf_counter() - start
        penalty = float(np.mean(terms)) if phase.trains_classifier else 0.0
        return self._validate(validation, phase.name, epoch, float(np.mean(losses)), penalty, seconds,
                              ramp * self.lam)

    def _validate(self, validation, phase: str, epoch: int, loss: float, penalty: float,
                  seconds: float, penalty_weight: float) -> EpochRecord | None:
        if validation is None:
            return None
        Xv, yv, mv, wv = validation
        selection = self.config.selection
        scores = self.predict(Xv, mv)
        m = evaluate_scores(scores, yv, mv, wv, self.binning.coarsened(selection.jsd_bins), toys=selection.jsd_toys)
        record = EpochRecord(epoch, phase, loss, penalty, m["auc"], m["r50"], m["jsd50"], m["floor50"], m["ratio50"],
                             seconds, penalty_weight, m["ratio80"], weighted_cross_entropy(scores, yv, wv))
        self.history.append(record)
        log.info("%s %-20s epoch %2d loss %.4f penalty %.4f AUC %.3f R50 %.1f JSD50/floor %.1f (%.1f s)",
                 self.method, phase, epoch, loss, penalty, record.auc, record.r50, record.ratio50, seconds)
        return record

    # ------------------------------------------------------------------ using

    def logits(self, X: np.ndarray, batch: int = 65536) -> np.ndarray:
        """Classifier logits for raw (unstandardised) features."""
        Xs = self.standardiser(X)[:, self.kept]
        out = [self.strategy.discriminant(self.classifier(Xs[i:i + batch], training=False)).numpy()
               for i in range(0, len(Xs), batch)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        """Every class's probability [N, classes] for raw features (multi-class networks only)."""
        Xs = self.standardiser(X)[:, self.kept]
        probabilities = self.strategy.probabilities(self.classifier(Xs, training=False))
        if probabilities is None:
            raise ValueError(f"method {self.method!r} is a binary classifier")
        return probabilities.numpy()

    def predict(self, X: np.ndarray, protected: np.ndarray | None = None) -> np.ndarray:
        """Signal score in [0, 1] (the ``ddt`` method also needs the protected variable)."""
        logits = tf.constant(self.logits(X).astype(np.float64))
        protected = None if protected is None else tf.constant(np.asarray(protected, dtype=np.float64))
        return self.strategy.score(logits, protected).numpy()

    def decorrelation_penalty(self, X: np.ndarray, protected: np.ndarray, weights: np.ndarray) -> float:
        """The training penalty's term on these background events: I_adv in nats, or DisCo's dCor^2.

        Computed as in training, on inference-mode scores; it is pairwise in the events, so pass
        a few thousand.
        """
        if not self.strategy.decorrelating:
            raise ValueError(f"method {self.method!r} has no decorrelation penalty")
        Xs = self.standardiser(X)[:, self.kept]
        m = self._scaled_protected(protected)
        return float(self._decorrelation_term(tf.constant(Xs), tf.constant(m), tf.constant(weights, tf.float32)))

    def history_dicts(self) -> list[dict]:
        """The training history as plain dicts."""
        return [asdict(r) for r in self.history]


def weighted_cross_entropy(scores: np.ndarray, y: np.ndarray, weights: np.ndarray) -> float:
    """The weighted binary cross-entropy of scores in [0, 1] against signal (y = 1) and background (y = 0) on other
    events (a multi-class network's single-Higgs events, y = 2, left out)."""
    two = y < 2
    p = np.clip(np.asarray(scores[two], dtype=np.float64), 1e-7, 1 - 1e-7)
    losses = -(y[two] * np.log(p) + (1 - y[two]) * np.log(1 - p))
    return float(np.sum(weights[two] * losses) / np.sum(weights[two]))


def _adam(learning_rate: float):
    import keras

    return keras.optimizers.Adam(learning_rate)


def evaluate_scores(scores: np.ndarray, y: np.ndarray, protected: np.ndarray, weights: np.ndarray,
                    binning: metrics.Binning, toys: int = 20) -> dict[str, float]:
    """AUC, R50, R80 and background sculpting (JSD in ``binning``) at the 50% and 80% signal-efficiency cuts, of
    the signal (y = 1) against the background (y = 0); where single-Higgs events (y = 2) are given, their
    rejection at the same cuts as well (``r50_single_higgs``, ``r80_single_higgs``)."""
    higgs_scores, higgs_weights = scores[y == 2], weights[y == 2]
    two = y < 2
    scores, y, protected, weights = scores[two], y[two], protected[two], weights[two]
    result = {"auc": metrics.auc(scores, y, weights)}
    bkg = y == 0
    for eff in (50, 80):
        eff_b, threshold = metrics.background_efficiency_at(scores, y, eff / 100, weights)
        result[f"r{eff}"] = metrics.rejection(eff_b)
        s = metrics.jsd_at_signal_efficiency(scores[bkg], protected[bkg], threshold, weights[bkg], binning, toys)
        result.update({f"jsd{eff}": s["jsd"], f"floor{eff}": s["floor"], f"floor{eff}_std": s["floor_std"],
                       f"ratio{eff}": s["ratio"], f"inverse_jsd{eff}": s["inverse_jsd"],
                       f"threshold{eff}": threshold})
        if len(higgs_scores):
            passed = higgs_weights[higgs_scores >= threshold].sum()
            result[f"r{eff}_single_higgs"] = metrics.rejection(float(passed / higgs_weights.sum()))
    result["jsd_binning"] = binning.describe()
    result.update({f"{k}_correlation": v
                   for k, v in metrics.correlations(scores[bkg], protected[bkg], weights[bkg]).items()})
    return result
