"""Analysis configuration: dataclasses loaded from YAML, with packaged defaults.

The defaults live in ``ttH_adv/data/analysis.yaml`` (one source of truth, each value with its
source).  A user file overrides any subset of keys; unknown keys are errors, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .documents import parse_document, read_document
from .errors import ConfigError

# What a dataset is for, read by every stage (training, categorize, fits, plots, the run summary):
# data; signal (ttH); resonant (other H -> yy modes, peaking at m_H); continuum (non-resonant yy
# MC, the background templates' yy part); reducible (y+jet / jet+jet MC, with fake photons: the
# NTNI/TI ratio of fakes with which the templates measure a category's yy fraction).  A manifest
# carries it per dataset (ttH_adv.inputs.manifest).
ROLES = ("data", "signal", "resonant", "continuum", "reducible")


@dataclass(frozen=True)
class ProcessingDefaults:
    """How a run processes where nothing says otherwise: ``RunOptions``, the command line and the batch read these."""

    executor: str = "iterative"
    workers: int = 2
    chunksize: int = 100_000      # events per chunk, at least (basket-aligned)
    systematics: str = "none"


PROCESSING = ProcessingDefaults()
EXECUTORS = ("iterative", "futures", "dask")
SYSTEMATIC_MODES = ("none", "weights", "all")  # --systematics: nominal only; variations keeping the selection; all


@dataclass(frozen=True)
class PhotonCuts:
    pt_min: float
    abs_eta_max: float
    crack: tuple[float, float]
    lead_pt_over_mass: float
    sublead_pt_over_mass: float


@dataclass(frozen=True)
class MassWindow:
    low: float
    high: float
    bin_width: float
    blind_low: float
    blind_high: float
    higgs: float
    signal_scan: tuple[float, float]
    jsd_bin_width: float
    gof_bin_width: float

    @property
    def n_bins(self) -> int:
        """Number of m_yy bins in [low, high]."""
        return round((self.high - self.low) / self.bin_width)

    @property
    def blind(self) -> tuple[float, float]:
        """The blinded signal window (blind_low, blind_high)."""
        return (self.blind_low, self.blind_high)

    def edges(self) -> np.ndarray:
        """The histograms' m_yy bin edges."""
        return np.linspace(self.low, self.high, self.n_bins + 1)

    def in_window(self, mass: np.ndarray) -> np.ndarray:
        """Events inside the blinded signal window."""
        mass = np.asarray(mass)
        return (mass > self.blind_low) & (mass < self.blind_high)

    def sideband_bins(self, edges: np.ndarray) -> np.ndarray:
        """Bins whose centre lies outside the signal window."""
        centres = 0.5 * (edges[:-1] + edges[1:])
        return (centres < self.blind_low) | (centres > self.blind_high)

    def scan_masses(self) -> tuple[float, ...]:
        """m_H values of the spurious-signal scan, 1 GeV apart."""
        low, high = self.signal_scan
        return tuple(float(m) for m in np.arange(low, high + 0.5, 1.0))

    def check_edges(self, edges: np.ndarray, what: str) -> None:
        """Refuse histograms binned for another m_yy window than this configuration's."""
        if len(edges) != self.n_bins + 1 or not np.allclose([edges[0], edges[-1]], [self.low, self.high]):
            raise ConfigError(f"{what} has m_yy bins {edges[0]:g}-{edges[-1]:g} GeV ({len(edges) - 1} bins), "
                              f"the configuration's mass window is {self.low:g}-{self.high:g} GeV "
                              f"({self.n_bins} bins): pass the --config the histograms were made with")


@dataclass(frozen=True)
class JetCuts:
    pt_min: float
    abs_eta_max: float


@dataclass(frozen=True)
class LeptonCuts:
    electron_pt_min: float
    electron_abs_eta_max: float
    muon_pt_min: float
    muon_abs_eta_max: float
    require_tight: bool


@dataclass(frozen=True)
class ChannelCuts:
    min_jets: int
    min_bjets: int
    min_leptons: int = 0
    max_leptons: int | None = None


@dataclass(frozen=True)
class WeightSystematic:
    scale_factor: str  # the scale-factor branch it varies
    relative: float    # relative 1-sigma uncertainty of that scale factor


@dataclass(frozen=True)
class ObjectSystematic:
    collection: str    # photon | jet | lepton: shifted by +/- its pt_syst field


@dataclass(frozen=True)
class BranchSystematic:
    nominal: str       # per-event weight branch of the nominal
    up: str            # ... and of the up and down variations: weight x up / nominal, per event
    down: str


@dataclass(frozen=True)
class CorrectionlibSystematic:
    file: str                  # correctionlib JSON (schema v2), relative to the working directory
    correction: str            # the correction's name in the file
    inputs: tuple[str, ...]    # per input: a feature name (ttH_adv.event.features) or "systematic"
    nominal: str = "nominal"   # values of the "systematic" input
    up: str = "up"
    down: str = "down"


@dataclass(frozen=True)
class SystematicsConfig:
    """One section per kind of systematic (ttH_adv.event.systematics.SYSTEMATIC_KINDS), each name -> settings."""

    weight: dict[str, WeightSystematic]
    object: dict[str, ObjectSystematic]
    branches: dict[str, BranchSystematic] = field(default_factory=dict)
    correctionlib: dict[str, CorrectionlibSystematic] = field(default_factory=dict)


@dataclass(frozen=True)
class FitConfig:
    template_min_statistics: float
    template_replicas: int
    efficiency_bandwidths: tuple[float, ...]  # GeV: the kernels a category's efficiency in m_yy chooses from (inf: flat)
    efficiency_tolerance: float   # the widest kernel whose leave-one-out log-likelihood is within this of the best
    spurious_fraction_of_signal: float
    spurious_fraction_of_error: float
    min_gof_probability: float
    gof_toys: int                 # toys behind a goodness-of-fit p-value where the sidebands hold few events
    gof_toys_below: int           # ... fewer sideband events than this
    f_test_probability: float
    bias_toys: int


@dataclass(frozen=True)
class NormalisationUncertainty:
    """A constrained yield uncertainty of the samples it applies to: x (1 + up) at +1 sigma, x (1 - down) at -1."""

    up: float
    down: float
    roles: tuple[str, ...] = ()   # the roles it applies to (signal, resonant) ...
    dsids: tuple[int, ...] = ()   # ... and/or the datasets of these DSIDs (the manifest's)


@dataclass(frozen=True)
class SignalShapeUncertainty:
    """The Higgs peak's position and width, relative, as shape terms of every Higgs sample's signal model."""

    mass_scale: float        # peak position m x (1 +/- mass_scale)
    mass_resolution: float   # peak width sigma x (1 +/- mass_resolution)


@dataclass(frozen=True)
class UncertaintiesConfig:
    """The systematic uncertainties of the statistical model (``ttH_adv.stats.systematics``)."""

    normalisation: dict[str, NormalisationUncertainty]
    signal_shape: SignalShapeUncertainty
    from_histograms: bool    # every systematic variation the histograms hold as a yield term of each Higgs sample


@dataclass(frozen=True)
class ClusterConfig:
    cores: int
    memory: str
    disk: str
    minimum_jobs: int
    maximum_jobs: int
    job_extra_directives: dict[str, str]
    setup: tuple[str, ...]
    container_image: str | None
    proxy: str | None
    python: str
    log_directory: str


@dataclass(frozen=True)
class CollectionMap:
    prefix: str
    fields: dict[str, str]

    def branch(self, field_name: str) -> str:
        """The file branch holding one field of this collection."""
        return self.prefix + self.fields[field_name]


@dataclass(frozen=True)
class BranchMap:
    tree: str
    energy_scale: float
    energy_fields: tuple[str, ...]
    collections: dict[str, CollectionMap]
    singletons: dict[str, dict[str, str]]
    event: dict[str, str]
    electron_type: int = 11
    muon_type: int = 13
    optional_fields: tuple[str, ...] = ()  # read only when asked for (object systematics): never required

    def required_branches(self) -> list[str]:
        """The branches of the collections' and singletons' fields every file must have (not the optional ones)."""
        return self._field_branches(optional=False)

    def optional_branches(self) -> list[str]:
        """The branches of the optional fields (the object-systematic shifts)."""
        return self._field_branches(optional=True)

    def _field_branches(self, optional: bool) -> list[str]:
        """Branches of the collection and singleton fields that are (or are not) optional, in map order."""
        pairs = [(f, c.branch(f)) for c in self.collections.values() for f in c.fields]
        pairs += [(f, b) for fields in self.singletons.values() for f, b in fields.items()]
        return [b for f, b in pairs if (f in self.optional_fields) == optional]


@dataclass(frozen=True)
class Decision:
    """A yes/no per object read from a format: a boolean field (``flag``), or fields over the object's pT
    each below its maximum (``relative_max``: isolation cones); the fields are the branch map's names."""

    flag: str | None = None
    relative_max: dict[str, float] = field(default_factory=dict)

    def fields(self) -> tuple[str, ...]:
        """The object fields the decision reads."""
        return (self.flag,) if self.flag else tuple(self.relative_max)

    def __call__(self, objects: Any) -> np.ndarray:
        """The decision for every object (a Collection or Record with these fields and pt)."""
        if self.flag:
            return np.asarray(objects[self.flag]).astype(bool)
        passes = None
        for name, maximum in self.relative_max.items():
            cut = objects[name] < maximum * objects["pt"]
            passes = cut if passes is None else passes & cut
        return passes


@dataclass(frozen=True)
class Threshold:
    """A score cut: ``field`` above ``minimum`` (at least ``minimum`` with ``inclusive``, for quantiles)."""

    field: str
    minimum: float
    inclusive: bool = False

    def fields(self) -> tuple[str, ...]:
        """The object fields the cut reads."""
        return (self.field,)

    def __call__(self, objects: Any) -> np.ndarray:
        """The cut for every object."""
        values = np.asarray(objects[self.field])
        return values >= self.minimum if self.inclusive else values > self.minimum


@dataclass(frozen=True)
class JvtDecision:
    """Pile-up jet rejection: a boolean ``flag``, or ``field`` above ``minimum`` for jets below ``pt_max`` and
    ``abs_eta_max`` (the others pass)."""

    flag: str | None = None
    field: str | None = None
    minimum: float = 0.0
    pt_max: float = 0.0
    abs_eta_max: float = 0.0

    def fields(self) -> tuple[str, ...]:
        """The jet fields the decision reads."""
        return tuple(f for f in (self.flag, self.field) if f)

    def __call__(self, jets: Any) -> np.ndarray:
        """The decision for every jet."""
        if self.flag:
            return np.asarray(jets[self.flag]).astype(bool)
        applies = (jets["pt"] < self.pt_max) & (np.abs(jets["eta"]) < self.abs_eta_max)
        return ~applies | (jets[self.field] > self.minimum)


@dataclass(frozen=True)
class Normalisation:
    """Where an MC file's cross-section and sum of weights come from (``tth-adv manifest``)."""

    cross_section: tuple[str, ...] = ()  # branches whose product is sigma in pb; none: given with --xsec
    sum_of_weights: str | None = None    # the branch holding the DSID's sum of mcWeight; None: sum the events'


@dataclass(frozen=True)
class PhysliteSettings:
    """What a DAOD_PHYSLITE release names differently (``ttH_adv.inputs.physlite``, the PHYSLITE reader)."""

    btagging: str             # the jets' b-tagging container (its ElementLink target)
    tagger: str               # DL1r, DL1dv01: pb, pc, pu -> D = ln(pb / (fc pc + (1 - fc) pu))
    charm_fraction: float     # fc of that discriminant
    muon_quality_max: int     # the loosest xAOD muon quality that counts as identified (0 tight, 1 medium)
    # Masses (file units) of collections that store none: xAOD muons carry pt, eta, phi but no mass branch.
    fixed_mass: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class InputFormat:
    """Everything that differs between the ntuples the analysis reads, as data (``ttH_adv.inputs.objects`` reads it).

    ``reader`` flat: a flat ntuple read through the branch map (``ttH_adv.inputs.schema``); physlite: a
    DAOD_PHYSLITE CollectionTree through coffea's PHYSLITESchema, the branch map's collection
    prefixes naming its collections.  The decisions read the branch map's field names.
    """

    reader: str
    branches: BranchMap
    photon_id: Decision
    photon_isolation: Decision
    lepton_id: Decision
    lepton_isolation: Decision
    btag: Threshold
    jvt: JvtDecision
    normalisation: Normalisation
    scale_factors: tuple[str, ...] = ()   # per-event weight branches multiplied into mcWeight (MC)
    catalogue: str | None = None          # packaged DSID catalogue of `tth-adv manifest` (ttH_adv/data)
    physlite: PhysliteSettings | None = None

    def fields(self, collection: str) -> tuple[str, ...]:
        """The fields of a collection the analysis reads: kinematics and what its decisions need."""
        kinematics = ("pt", "eta", "phi", "energy")
        needs = {"photon": (*self.photon_id.fields(), *self.photon_isolation.fields()),
                 "jet": (*self.btag.fields(), *self.jvt.fields()),
                 "lepton": ("charge", "type", *self.lepton_id.fields(), *self.lepton_isolation.fields())}[collection]
        return tuple(dict.fromkeys((*kinematics, *needs)))


@dataclass(frozen=True)
class AnalysisConfig:
    photons: PhotonCuts
    mass: MassWindow
    jets: JetCuts
    leptons: LeptonCuts
    channels: dict[str, ChannelCuts]
    template_control: dict[str, ChannelCuts]  # per channel: a looser selection for background-template shapes
    categories: dict[str, tuple[float, ...]]
    systematics: SystematicsConfig
    fits: FitConfig
    uncertainties: UncertaintiesConfig
    cluster: ClusterConfig
    formats: dict[str, InputFormat] = field(repr=False)   # the input format profiles by name
    default_format: str = "opendata2020"                  # a manifest dataset's format where it names none
    # a multi-class model's class -> the suffix of its control category per channel (<channel>_<suffix>)
    control_categories: dict[str, str] = field(default_factory=dict)

    def format(self, name: str | None = None) -> InputFormat:
        """An input format profile by name (the default one for None); ``ConfigError`` naming the known ones."""
        name = name or self.default_format
        if name not in self.formats:
            raise ConfigError(f"unknown input format {name!r}; known: {sorted(self.formats)} (configuration 'formats')")
        return self.formats[name]

    def category_names(self) -> list[str]:
        """Histogram categories: <channel>_<i> per score boundary, or the channel alone."""
        return category_names(self.channels, self.categories)


def category_names(channels: Iterable[str], categories: dict[str, tuple[float, ...]],
                   controls: Iterable[str] = ()) -> list[str]:
    """Category labels in channel order: <channel>_<i> per score boundary, then <channel>_<suffix> per control
    category suffix (a multi-class model's), or the channel alone."""
    names = []
    for channel in channels:
        bounds = categories.get(channel, ())
        names += ([f"{channel}_{i + 1}" for i in range(len(bounds))] + [f"{channel}_{c}" for c in controls] if bounds
                  else [channel])
    return names


def config_hash(config: AnalysisConfig) -> str:
    """A short hash of the full configuration, recorded in outputs and feature dumps."""
    text = json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _default_dict() -> dict[str, Any]:
    """The packaged configuration: analysis.yaml, and every input format profile of data/formats."""
    data = parse_document(resources.files("ttH_adv").joinpath("data/analysis.yaml").read_text(),
                          "ttH_adv/data/analysis.yaml", "the packaged analysis configuration")
    profiles = resources.files("ttH_adv").joinpath("data/formats")
    data["formats"] = {p.name.removesuffix(".yaml"): parse_document(p.read_text(), f"ttH_adv/data/formats/{p.name}",
                                                                    "an input format profile")
                       for p in sorted(profiles.iterdir(), key=lambda p: p.name) if p.name.endswith(".yaml")}
    return data


# Mappings replaced whole by a user file (or a format that extends another): a branch map's field list
# describes one ntuple format, a decision one way of deciding (a flag and a cut never mix).
REPLACED_WHOLE = {"fields", "relative_max", "photon_id", "photon_isolation", "lepton_id", "lepton_isolation",
                  "btag", "jvt", "normalisation"}


def _resolve_extends(formats: dict[str, Any]) -> dict[str, Any]:
    """Format profiles with ``extends: <profile>`` are that profile overlaid with their own keys."""
    resolved: dict[str, Any] = {}

    def resolve(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
        if name in resolved:
            return resolved[name]
        profile = formats[name]
        base = profile.get("extends") if isinstance(profile, dict) else None
        if base is not None:
            if base not in formats or base in seen:
                raise ConfigError(f"format '{name}' extends {base!r}, which is {'a cycle' if base in seen else 'unknown'} "
                                  f"(formats: {sorted(formats)})")
            profile = merge_overrides(resolve(base, (*seen, name)), {k: v for k, v in profile.items() if k != "extends"})
        resolved[name] = profile
        return profile

    return {name: resolve(name) for name in formats}


def merge_overrides(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively overlay ``override`` on ``base``; ``build_section`` then rejects unknown keys."""
    if not isinstance(override, dict):
        raise ConfigError(f"a configuration override must be a mapping, got {type(override).__name__}")
    merged = dict(base)
    for key, value in override.items():
        nested = isinstance(base.get(key), dict) and isinstance(value, dict) and key not in REPLACED_WHOLE
        merged[key] = merge_overrides(base[key], value) if nested else value
    return merged


def build_section(cls: type, data: Any, where: str) -> Any:
    """Build a (nested) configuration dataclass from plain data, checking keys and types."""
    hints = typing.get_type_hints(cls)
    if not isinstance(data, dict):
        raise ConfigError(f"'{where}' must be a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in '{where}' (allowed: {sorted(names)})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"missing key '{where}.{f.name}'")
            continue
        kwargs[f.name] = _coerce(hints[f.name], data[f.name], f"{where}.{f.name}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return build_section(hint, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"'{where}' must be a mapping")
        return {k: _coerce(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{where}' must be a list")
        item = args[0]
        return tuple(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        return _coerce(next(a for a in args if a is not type(None)), value, where)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{where}' must be a number, got {value!r}")
        return float(value)
    if hint is int or hint is bool:
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(f"'{where}' must be {hint.__name__}, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"'{where}' must be a string, got {value!r}")
        return value
    return value


def load_config(path: str | Path | None = None) -> AnalysisConfig:
    """Load the packaged defaults, overlaid with the YAML file at ``path`` if given."""
    data = layered(_default_dict(), path, "an analysis configuration (ttH_adv/data/analysis.yaml's keys)")
    return _validated(data, str(path or "packaged defaults"), resolve_extends=True)


def layered(defaults: dict[str, Any], path: str | Path | None, what: str,
            overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Packaged defaults overlaid with a user's YAML file and then with overrides (analysis and training alike)."""
    data = defaults
    if path is not None:
        data = merge_overrides(data, read_document(path, what, empty_ok=True))
    return merge_overrides(data, overrides) if overrides else data


def packaged_formats() -> dict[str, InputFormat]:
    """The packaged input format profiles alone (what the generator writes), whatever a user's file says."""
    return _packaged().formats


@functools.cache
def _packaged() -> AnalysisConfig:
    return _validated(_default_dict(), "packaged defaults", resolve_extends=True)


def _validated(data: dict[str, Any], source: str, resolve_extends: bool = False) -> AnalysisConfig:
    """An AnalysisConfig from plain data, with every cross-check; errors name ``source``."""
    try:
        if resolve_extends:
            data["formats"] = _resolve_extends(data.get("formats") or {})
        config = build_section(AnalysisConfig, data, "config")
        config.format()  # the default format exists
        _check_mass_window(config.mass)
        _check_categories(config)
        _check_template_control(config)
        _check_uncertainties(config.uncertainties)
        _check_fits(config.fits)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    return config


def config_to_data(config: AnalysisConfig) -> dict[str, Any]:
    """The whole effective configuration as JSON-ready data (what outputs and dumps carry)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_data(data: dict[str, Any], source: str) -> AnalysisConfig:
    """The configuration an output or dump carries (``config_to_data``), checked as a file would be."""
    return _validated(json.loads(json.dumps(data)), source)


def first_difference(a: Any, b: Any, where: str = "") -> str | None:
    """The dotted key of the first place two configuration data differ (None where they agree)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys(), key=str):
            found = first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else str(key))
            if found:
                return found
        return None
    return None if a == b else (where or "(top level)")


def _check_mass_window(window: MassWindow) -> None:
    inside = window.low < window.blind_low < window.blind_high < window.high
    scan = window.blind_low <= window.signal_scan[0] <= window.signal_scan[1] <= window.blind_high
    if not inside or not scan or not window.blind_low < window.higgs < window.blind_high:
        raise ConfigError("'mass' needs low < blind_low < higgs < blind_high < high and the signal_scan "
                          f"inside the blinded window, got {window}")
    for name in ("bin_width", "jsd_bin_width", "gof_bin_width"):
        ratio = (window.high - window.low) / getattr(window, name)
        if getattr(window, name) <= 0 or abs(ratio - round(ratio)) > 1e-6:
            raise ConfigError(f"'mass.{name}' must divide the window {window.low:g}-{window.high:g} GeV")


def _check_categories(config: AnalysisConfig) -> None:
    for channel, bounds in config.categories.items():
        if channel not in config.channels:
            raise ConfigError(f"'categories.{channel}': no such channel (channels: {list(config.channels)})")
        if any(not 0.0 <= b <= 1.0 for b in bounds) or any(a <= b for a, b in zip(bounds, bounds[1:], strict=False)):
            raise ConfigError(f"'categories.{channel}' must be strictly descending scores in [0, 1], got {list(bounds)}")
    suffixes = list(config.control_categories.values())
    bad = [x for x in suffixes if not x.isidentifier() or x.isdigit()]
    if bad or len(set(suffixes)) < len(suffixes):  # a number would be a score category's; two classes, one category
        raise ConfigError(f"'control_categories' must give each class its own name (letters, not a number), got "
                          f"{config.control_categories}")


def _check_template_control(config: AnalysisConfig) -> None:
    """Each channel's template control selection must contain the channel: every cut as loose or looser."""
    for channel, control in config.template_control.items():
        cuts = config.channels.get(channel)
        if cuts is None:
            raise ConfigError(f"'template_control.{channel}': no such channel (channels: {list(config.channels)})")
        looser = (control.min_jets <= cuts.min_jets and control.min_bjets <= cuts.min_bjets
                  and control.min_leptons <= cuts.min_leptons
                  and (control.max_leptons is None or (cuts.max_leptons is not None
                                                       and control.max_leptons >= cuts.max_leptons)))
        if not looser:
            raise ConfigError(f"'template_control.{channel}' must be looser than 'channels.{channel}' in every cut "
                              f"(it holds the channel's events and more), got {control} against {cuts}")


def _check_fits(settings: FitConfig) -> None:
    """Kernel widths a smoother can take (.inf: the flat efficiency), a tolerance and replicas that measure."""
    widths = settings.efficiency_bandwidths
    if not widths or any(not w > 0 for w in widths):
        raise ConfigError(f"'fits.efficiency_bandwidths' needs widths > 0 GeV (.inf: flat), got {list(widths)}")
    if not settings.efficiency_tolerance >= 0:
        raise ConfigError(f"'fits.efficiency_tolerance' needs a value >= 0, got {settings.efficiency_tolerance}")
    if settings.template_replicas < 2:
        raise ConfigError(f"'fits.template_replicas' needs at least 2 replicas (a variance), got "
                          f"{settings.template_replicas}")


def _check_uncertainties(settings: UncertaintiesConfig) -> None:
    """Sizes that a log-normal term can take, roles that exist, every term applying to something."""
    for name, u in settings.normalisation.items():
        if not (u.up >= 0 and 0 <= u.down < 1):
            raise ConfigError(f"'uncertainties.normalisation.{name}' needs up >= 0 and 0 <= down < 1 "
                              f"(relative sizes), got up {u.up}, down {u.down}")
        unknown = sorted(set(u.roles) - set(ROLES))
        if unknown or not (u.roles or u.dsids):
            raise ConfigError(f"'uncertainties.normalisation.{name}' must name roles ({list(ROLES)}) or dsids it "
                              f"applies to" + (f", not {unknown}" if unknown else ""))
    shape = settings.signal_shape
    if not (0 <= shape.mass_scale < 0.1 and 0 <= shape.mass_resolution < 1):
        raise ConfigError("'uncertainties.signal_shape' needs 0 <= mass_scale < 0.1 and 0 <= mass_resolution < 1, "
                          f"got {shape}")


def with_categories(config: AnalysisConfig, categories: dict[str, list[float]]) -> AnalysisConfig:
    """A copy of the configuration with other score-category boundaries (validated)."""
    import dataclasses as dc

    updated = dc.replace(config, categories={**config.categories, **{k: tuple(v) for k, v in categories.items()}})
    _check_categories(updated)
    return updated

