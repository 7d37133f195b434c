"""Training configuration: dataclasses loaded from ``training/defaults.yaml`` plus a user file."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ttH_adv.config import build_section, layered
from ttH_adv.documents import parse_document
from ttH_adv.errors import ConfigError
from ttH_adv.event.features import feature_names

BACKGROUNDS = ("ntni_data", "mc", "both")


@dataclass(frozen=True)
class DataConfig:
    feature_set: str
    background: str
    min_jets: int
    n_folds: int
    validation_fraction: float


@dataclass(frozen=True)
class ClassifierConfig:
    layers: tuple[int, ...]
    dropout: float
    learning_rate: float


@dataclass(frozen=True)
class AdversaryConfig:
    components: int
    layers: tuple[int, ...]
    learning_rate: float
    classifier_learning_rate: float
    steps_per_classifier_step: int
    input: str
    marginal_conditions: int   # events of a batch the penalty's marginal q_bar runs over (0: all)
    lambda_ramp_epochs: int    # adversarial epochs over which lambda rises linearly from 0 (0: full from the first)


@dataclass(frozen=True)
class ScheduleConfig:
    batch_size: int
    pretrain_classifier_epochs: int
    pretrain_adversary_epochs: int
    epochs: int
    patience: int
    seed: int


@dataclass(frozen=True)
class SelectionConfig:
    flatness_target: float
    min_auc: float
    jsd_toys: int
    jsd_bins: int
    quantile_bins: int
    epoch_working_points: tuple[int, ...]   # epochs: the worst validation JSD/floor over these signal efficiencies (%)


@dataclass(frozen=True)
class BaselineConfig:
    drop_correlation_max: float
    ddt_bins: int
    ddt_levels: int
    ceiling_events_per_bin: int
    ceiling_scan: tuple[int, ...]   # the ceiling's map at these background events per m_yy bin: its flatness curve


@dataclass(frozen=True)
class ModeConfig:
    mass_bins: int       # equal-occupancy bins of the protected variable per background batch
    score_bins: int      # score thresholds at which the conditional CDFs are compared


@dataclass(frozen=True)
class TrainingConfig:
    data: DataConfig
    classifier: ClassifierConfig
    adversary: AdversaryConfig
    schedule: ScheduleConfig
    selection: SelectionConfig
    baselines: BaselineConfig
    mode: ModeConfig               # the MoDe methods' settings (mode, mode-linear)
    lambdas: dict[str, float]      # each lambda-taking method's default strength (tth-adv train without --lambda)


def load_training_config(path: str | Path | None = None, overrides: dict | None = None) -> TrainingConfig:
    """Packaged defaults, overlaid with a YAML file and then with a dict of overrides."""
    defaults = parse_document(resources.files("training").joinpath("defaults.yaml").read_text(),
                              "training/defaults.yaml", "the packaged training configuration")
    data = layered(defaults, path, "a training configuration (training/defaults.yaml's keys)", overrides)
    config = build_section(TrainingConfig, data, "training")
    feature_names(config.data.feature_set)  # an unknown feature set fails here, before TensorFlow is imported
    if config.data.background not in BACKGROUNDS:
        raise ConfigError(f"training.data.background must be one of {BACKGROUNDS}, got {config.data.background!r}")
    if config.adversary.input not in ("logit", "score"):
        raise ConfigError(f"training.adversary.input must be 'logit' or 'score', got {config.adversary.input!r}")
    if config.data.n_folds < 2:
        raise ConfigError("training.data.n_folds must be at least 2")
    bad = {name: lam for name, lam in config.lambdas.items() if not lam > 0}
    if bad:
        raise ConfigError(f"training.lambdas must be positive, got {bad}")
    if not 0 <= config.adversary.marginal_conditions <= config.schedule.batch_size:
        raise ConfigError(f"training.adversary.marginal_conditions must be 0 (all) to schedule.batch_size "
                          f"({config.schedule.batch_size}), got {config.adversary.marginal_conditions}")
    if config.mode.mass_bins < 2 or config.mode.score_bins < 2:
        raise ConfigError("training.mode needs mass_bins >= 2 and score_bins >= 2")
    if config.mode.mass_bins > config.schedule.batch_size // 4:
        raise ConfigError(f"training.mode.mass_bins ({config.mode.mass_bins}) needs at least 4 background events per bin "
                          f"of a batch (schedule.batch_size {config.schedule.batch_size})")
    if not config.selection.epoch_working_points or not set(config.selection.epoch_working_points) <= {50, 80}:
        raise ConfigError("training.selection.epoch_working_points must be a non-empty subset of [50, 80], "
                          f"not {list(config.selection.epoch_working_points)}")
    if config.adversary.lambda_ramp_epochs < 0:
        raise ConfigError(f"training.adversary.lambda_ramp_epochs must be >= 0, not {config.adversary.lambda_ramp_epochs}")
    if config.baselines.ddt_bins < 1 or config.baselines.ddt_levels < 2 or config.baselines.ceiling_events_per_bin < 10:
        raise ConfigError("training.baselines needs ddt_bins >= 1, ddt_levels >= 2 and ceiling_events_per_bin >= 10")
    return config
