"""What ``tth-adv fit`` finds, as typed records: fits.json is ``FitResult.to_dict()``, read back by ``from_dict``.

The field names are fits.json's keys (a format: ``tests/test_reference.py`` pins them).  Per
category: the signal model, the sideband fit of every family, the template's facts, the
spurious-signal test of every family, the function choice, the bias toys, the modelling
uncertainty and the expected figures; for all categories together the same figures with every
uncertainty, statistical and modelling only, statistical only, over the categories with an
acceptable function alone, and the nuisances' impacts; and pyhf's cross-check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import FitConfig
from ..records import Record


@dataclass
class Figures(Record):
    """Expected significance, mu with its error and (where computed) the median expected 95% CL limit on mu."""

    significance: float
    mu: float
    mu_error: float
    upper_limit: float | None = None


@dataclass
class Variants(Record):
    """The same figures with every uncertainty (the headline), statistical and modelling, statistical only."""

    all_uncertainties: Figures | None = None
    statistical_and_modelling: Figures | None = None
    statistical_only: Figures | None = None


@dataclass
class SignalFit(Record):
    """The double-sided Crystal Ball fitted to the signal MC."""

    params: dict[str, float]
    chi2_ndf: float


@dataclass
class SidebandFit(Record):
    """One family's fit to the TI data sidebands and its goodness of fit (saturated-model deviance)."""

    params: list[float]
    norm: float
    deviance: float
    ndf: int
    deviance_ndf: float
    p_value: float
    p_value_from: str
    converged: bool


@dataclass
class Closure(Record):
    """A component's own events against the inclusive shape times its efficiency in m_yy."""

    chi2: float
    ndf: float                       # bins less the smoother's effective parameters
    p_value: float


@dataclass
class TemplateFacts(Record):
    """How a category's background template was made and what statistics it carries."""

    method: str                      # own shapes, or the inclusive shapes times the efficiency in m_yy
    effective_over_data: float
    own_effective_over_data: float
    effective_events: float
    data_events: float
    data_sideband: float
    template_sideband: float
    photon_fraction: float
    photon_fraction_error: float
    mc_effective_events: float
    ntni_events: float
    closure: dict[str, Closure | None] = field(default_factory=dict)
    closure_p_value: float | None = None
    replicas: int = 0
    signal_statistics_ratio: float | None = None   # (the signal's error in data / Delta_MC)^2 at the worst mass
    bandwidths: dict[str, float] = field(default_factory=dict)  # GeV, per sample: the efficiency's kernel
    photon_fraction_method: str = ""  # TI/NTNI counts, or a fit of the shapes to the TI sidebands


@dataclass
class ScanPoint(Record):
    """The spurious signal at one m_H of the scan."""

    m_H: float
    signal: float
    delta_mc: float
    zeta: float


@dataclass
class SpuriousTest(Record):
    """The spurious-signal test of one family on the template (relaxed criterion)."""

    family: str
    max_abs_signal: float
    max_zeta: float
    delta_mc: float
    max_relative_to_expected: float
    max_relative_to_error: float
    passed: bool
    scan: list[ScanPoint] = field(default_factory=list)
    data_signal_error: float = 0.0

    def worst(self) -> ScanPoint:
        """The scan point of largest zeta."""
        return max(self.scan, key=lambda point: point.zeta)


@dataclass
class FTest(Record):
    """An F-test of a family against its next order."""

    low: str
    high: str
    probability: float


@dataclass
class FunctionChoice(Record):
    """The families that passed the spurious-signal test, those that qualified, and the F-tests between them."""

    spurious_passed: list[str] = field(default_factory=list)
    qualified: list[str] = field(default_factory=list)
    f_tests: list[FTest] = field(default_factory=list)


@dataclass
class Bias(Record):
    """The signal fitted to background-only toys from the template with the chosen function."""

    toys: int
    mean_signal: float
    spread: float
    mean_error: float
    allowance: float
    mean_within_allowance: bool

    @property
    def over_allowance(self) -> float:
        """|mean bias| / allowance."""
        return abs(self.mean_signal) / self.allowance


@dataclass
class Modelling(Record):
    """The category's background-modelling uncertainty in events and where it comes from."""

    events: float
    source: str                      # spurious or bias
    spurious_signal: float
    bias: float


@dataclass
class CategoryFit(Record):
    """Every fit of one category."""

    category: str
    data_ti_sideband: float
    expected_signal: float
    chosen_family: str | None = None
    fallback: bool = False
    status: str = ""
    signal_model: SignalFit | None = None
    template: TemplateFacts | None = None
    spurious_signal: list[SpuriousTest] = field(default_factory=list)
    function_choice: FunctionChoice | None = None
    sideband_fits: dict[str, SidebandFit] = field(default_factory=dict)
    bias: Bias | None = None
    background_in_window: float | None = None
    signal_in_window: float | None = None
    modelling_uncertainty: Modelling | None = None
    resonant: float | None = None
    modifiers: list[str] = field(default_factory=list)
    expected: Variants | None = None

    @property
    def fitted(self) -> bool:
        """Whether the category has a background function (its own or a fall-back)."""
        return self.chosen_family is not None

    def spurious(self, family: str | None) -> SpuriousTest | None:
        """The spurious-signal test of one family (None where the category has none)."""
        return next((s for s in self.spurious_signal if s.family == family), None)

    def chosen_fit(self) -> SidebandFit | None:
        """The sideband fit of the chosen family."""
        return self.sideband_fits.get(self.chosen_family) if self.chosen_family else None


@dataclass
class Impact(Record):
    """A nuisance parameter's pull, constraint and impact on mu (linear; refitted for the largest)."""

    parameter: str
    name: str
    pull: float
    constraint: float
    linear: float
    impact: float
    impact_up: float | None = None
    impact_down: float | None = None


@dataclass
class Combination(Record):
    """All categories together: every variant's figures, the headline without the fall-backs, the impacts."""

    all_uncertainties: Figures
    statistical_and_modelling: Figures
    statistical_only: Figures
    categories: list[str]
    light: bool = False
    passing_categories: Figures | None = None   # the headline over the categories with an acceptable function
    passing: list[str] = field(default_factory=list)
    impacts: list[Impact] = field(default_factory=list)


@dataclass
class HeadlineFigures(Record):
    """The combined significance and limit a cross-check compares (pyhf's with its p0)."""

    significance: float
    upper_limit: float | None
    p0: float | None = None


@dataclass
class PyhfCheck(Record):
    """pyhf's combined figures beside the own fit's, their relative difference (or why pyhf's fit failed)."""

    own: HeadlineFigures
    pyhf: HeadlineFigures | None = None
    relative_difference: HeadlineFigures | None = None
    failed: str | None = None


@dataclass
class PyhfComparison(Record):
    """pyhf's cross-check with every uncertainty and statistical only."""

    note: str = ""
    modifiers_per_channel: dict[str, int] = field(default_factory=dict)
    all_uncertainties: PyhfCheck | None = None
    statistical_only: PyhfCheck | None = None


@dataclass
class Conventions(Record):
    """How the fits were made: the window, the template recipe, the settings, the samples by role."""

    gof_bin_width_gev: float
    blind_window: list[float]
    mass_window: list[float]
    signal_scan: list[float]
    datasets_by_role: dict[str, list[str]]
    template: str
    fits: FitConfig
    uncertainties: dict          # the configuration's uncertainties section, as written
    family_order: list[str]


@dataclass
class FitResult(Record):
    """fits.json: every category, the combination, the conventions they were made with and pyhf's cross-check."""

    categories: list[CategoryFit]
    combined: Combination | None = None
    unblinded: bool = False
    fallback: list[str] = field(default_factory=list)
    conventions: Conventions | None = None
    pyhf: PyhfComparison | None = None

    @property
    def fitted(self) -> list[CategoryFit]:
        """The categories with a background function."""
        return [c for c in self.categories if c.fitted]
