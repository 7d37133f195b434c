"""Background-only templates for the spurious-signal test, with their statistics measured by replicas.

A category's template is the continuum yy MC (TI region, its shape) plus the reducible y+jet/jet+jet
part, whose shape is the NTNI data, in the category's yy fraction f (the MC's own normalisation is not
used: on the synthetic samples it is off by a factor 2-30 in the categories).  Where a reducible MC is
given, f comes from the category's TI and NTNI data sidebands with the selection's simulated NTNI/TI
ratios of prompt and fake pairs (``photon_fraction_from_regions``); elsewhere from a binned Poisson fit
of the two shapes to the TI data sidebands, which the shapes' likeness leaves poorly constrained.  The
yield makes the template hold the data's sideband count.  A component whose shape holds less than one of its
events in the sidebands (a score cut that confines the category to the window) is given that one
event there, spread flat: an empty sideband is not known to be empty, and without it the fit would
shrink the template to nothing under the peak.

Where the category's own events give the template ``fits.template_min_statistics`` times the data's statistics,
its shapes are the category's own (``OWN``).  Elsewhere the shape of each sample -- each continuum MC dataset,
whose events share a weight and a process, and the NTNI data -- is its inclusive selection's (``mgg_inclusive``:
every selected diphoton event, before any jet, lepton, b-tag or score requirement) times its efficiency into the
category in m_yy (``EFFICIENCY``), eps(m) = P(category | selected, m): the sample's own events n in the category
over its inclusive ones N, smoothed by a Gaussian kernel as a local-linear fit at every bin (a plain kernel ratio
would lean toward low mass, where a falling spectrum puts most of N).  It carries what the channel's
requirements and the classifier's score cut do to m_yy -- the sculpting among it -- onto a base with statistics
to spare.  One efficiency per sample, because the processes differ: tt+yy passes a b-tag requirement that
yy+jets passes by mistag only, with weights a thousand times larger.  Where that still leaves the template short
(``CONTROL_EFFICIENCY``), each sample's efficiency is its control selection's -- the same score category without
the channel's b-tag requirement, ~100x the category's yy+jets events -- times the category's share of it, flat in
m_yy (``reweighted_sample``).

The kernel's width is the sample's events' to decide: the widest of ``fits.efficiency_bandwidths`` whose binned
leave-one-out binomial log-likelihood (each event predicted by the local-linear estimate of all the others) is
within ``fits.efficiency_tolerance`` of the best width's.  The widest is infinite: a flat efficiency, the inclusive
shape itself -- what a classifier decorrelated from m_yy ought to give, kept where the category's events cannot
tell a slope from it (a slope they could not see would be taken up by the background function anyway).  A category of many events resolves a narrow bump and keeps
it; one of a few dozen cannot tell a bump from its own fluctuations and gets a wide kernel, whose template does
not carry those fluctuations into the signal window as spurious signal.  The closure test (the category's own
events against eps x inclusive, chi2 in ``mass.gof_bin_width`` bins, the smoother's effective parameters off the
degrees of freedom) is recorded per sample: structure the chosen kernel smears and the events can see shows
there.

Statistics.  ``fits.template_replicas`` replicas remake the template from resampled inputs: counts
Poisson-resampled (weighted MC through its effective counts per bin; the category's events and the rest of the
selection independently, the efficiency recomputed with the nominal's kernel); f and the yield stay at the
data's fit.  Their per-bin variance gives the effective statistics (sum t)^2 / sum var(t), compared with the data
events the template stands for, and ``fits.spurious_signal`` takes Delta_MC from the replicas themselves, so the
correlations the efficiency brings between bins are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from iminuit import Minuit

from ..config import FitConfig, MassWindow
from .fit_results import Closure, TemplateFacts
from .fits import gof_groups

OWN, EFFICIENCY, CONTROL_EFFICIENCY = "own", "efficiency in m_yy", "control efficiency in m_yy"
# how the yy fraction was measured: from the TI and NTNI data counts (with simulated NTNI/TI ratios), or by a fit
# of the two shapes to the TI data sidebands (where no reducible MC is given)
REGIONS, SIDEBAND_FIT = "TI/NTNI counts", "sideband shape fit"
COMPONENTS = ("continuum", "ntni")


@dataclass(frozen=True)
class RegionSpectra:
    """The simulated m_yy spectra, TI and NTNI, of prompt photon pairs (continuum yy MC) and of pairs with a fake
    photon (reducible MC) in one selection: how much of each lands in NTNI, which the photon fraction's two-region
    measurement (``photon_fraction_from_regions``) needs."""

    prompt_ti: np.ndarray
    prompt_ntni: np.ndarray
    fake_ti: np.ndarray
    fake_ntni: np.ndarray

    def ntni_per_ti(self, side: np.ndarray) -> tuple[float, float] | None:
        """(prompt, fake) NTNI events per TI event in the sidebands; None where a spectrum is empty there or the fakes
        are not the more NTNI-like (the two regions could not tell the components apart)."""
        prompt_ti, prompt_ntni, fake_ti, fake_ntni = (float(np.maximum(h, 0.0)[side].sum()) for h in
                                                      (self.prompt_ti, self.prompt_ntni, self.fake_ti, self.fake_ntni))
        if min(prompt_ti, prompt_ntni, fake_ti, fake_ntni) <= 0:
            return None
        prompt, fake = prompt_ntni / prompt_ti, fake_ntni / fake_ti
        return (prompt, fake) if fake > prompt else None


@dataclass(frozen=True)
class Components:
    """A template's two ingredients in one category or selection: continuum yy MC and NTNI data."""

    mc: np.ndarray           # continuum yy MC (TI), sum of weights per bin
    mc_variance: np.ndarray  # its sum of w^2 per bin
    ntni: np.ndarray         # NTNI data counts per bin
    # the continuum MC dataset by dataset (values, variances), whose sum is ``mc``: each has its own efficiency
    mc_samples: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # the selection's simulated TI and NTNI spectra, where a reducible (fake-photon) MC is given
    regions: RegionSpectra | None = None

    def empty(self) -> bool:
        """Neither continuum MC nor NTNI events."""
        return np.maximum(self.mc, 0.0).sum() <= 0 and self.ntni.sum() <= 0

    def parts(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """(values, variances) per component; negative-weight bins count as empty."""
        return {"continuum": (np.maximum(self.mc, 0.0), np.maximum(self.mc_variance, 0.0)),
                "ntni": (self.ntni, self.ntni)}

    def plus(self, other: Components) -> Components:
        """The two selections' events together (a category and the rest of its control selection)."""
        names = set(self.mc_samples) | set(other.mc_samples)
        zero = (np.zeros_like(self.mc), np.zeros_like(self.mc))
        samples = {n: tuple(a + b for a, b in zip(self.mc_samples.get(n, zero), other.mc_samples.get(n, zero),
                                                   strict=True)) for n in names}
        return Components(self.mc + other.mc, self.mc_variance + other.mc_variance, self.ntni + other.ntni, samples,
                          self.regions)

    def samples(self, component: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """A component's samples, each of one kind of event and weight: the continuum datasets (or the continuum
        as one where they are not given), the NTNI data as ``ntni``; negative-weight bins count as empty."""
        if component == "continuum" and self.mc_samples:
            return {name: (np.maximum(v, 0.0), np.maximum(var, 0.0)) for name, (v, var) in self.mc_samples.items()}
        return {component: self.parts()[component]}


@dataclass
class Template:
    values: np.ndarray        # expected background per bin at the data's yield
    variance: np.ndarray      # statistical variance per bin, from the replicas
    fit_variance: np.ndarray  # the same with a floor of one event per component and bin: for fits
    replicas: np.ndarray      # [replicas, bins]: the template remade from resampled inputs
    photon_fraction: float    # yy share of the TI data, measured in the sidebands
    photon_fraction_error: float
    photon_fraction_method: str  # REGIONS or SIDEBAND_FIT
    data_events: float        # the data yield the template stands for (whole range)
    data_sideband: float      # TI data events in the sidebands
    template_sideband: float  # the template's events there (the fit makes them the data's)
    method: str               # OWN or EFFICIENCY
    own_statistics_ratio: float
    mc_effective_events: float
    ntni_events: float
    closure: dict[str, Closure | None] = field(default_factory=dict)
    bandwidths: dict[str, float] = field(default_factory=dict)  # GeV, each sample's efficiency kernel

    @property
    def effective_events(self) -> float:
        """(sum t)^2 / sum var(t): the statistics the template carries."""
        total_variance = float(self.variance.sum())
        return float(self.values.sum()) ** 2 / total_variance if total_variance > 0 else float("inf")

    @property
    def statistics_ratio(self) -> float:
        """Effective template events per data event."""
        return self.effective_events / self.data_events if self.data_events > 0 else float("inf")

    def closure_p_value(self) -> float | None:
        """The smallest closure p-value over the components (None where nothing was compared)."""
        values = [c.p_value for c in self.closure.values() if c and np.isfinite(c.p_value)]
        return min(values) if values else None

    def record(self) -> TemplateFacts:
        """The template's facts for fits.json."""
        return TemplateFacts(self.method, self.statistics_ratio, self.own_statistics_ratio, self.effective_events,
                             self.data_events, self.data_sideband, self.template_sideband, self.photon_fraction,
                             self.photon_fraction_error, self.mc_effective_events, self.ntni_events,
                             dict(self.closure), self.closure_p_value(), int(len(self.replicas)),
                             bandwidths=dict(self.bandwidths), photon_fraction_method=self.photon_fraction_method)


def photon_fraction_from_regions(data_ti: float, data_ntni: float, ntni_per_ti: tuple[float, float]
                                 ) -> tuple[float, float]:
    """(yy fraction of the TI data, its error) from the TI and NTNI data counts of the same events' sidebands.

    TI = A + B and NTNI = r_yy A + r_fake B, with A the prompt pairs and B those with a fake photon in TI, and
    r = NTNI per TI event of each (``RegionSpectra.ntni_per_ti``, from simulation): a fake photon fails the tight
    identification or isolation far more often than a prompt one, so NTNI measures the fakes and TI the rest.  The
    error is the data counts' Poisson one (the simulated ratios' is far smaller)."""
    prompt, fake = ntni_per_ti
    if data_ti <= 0:
        return 1.0, 0.0
    gap = fake - prompt
    fakes = float(np.clip((data_ntni - prompt * data_ti) / gap, 0.0, data_ti))
    error = np.sqrt(max(data_ntni, 1.0) * (1.0 + data_ntni / data_ti)) / (gap * data_ti)
    return 1.0 - fakes / data_ti, float(min(error, 1.0))


def measure_photon_fraction(data: np.ndarray, photon_shape: np.ndarray, reducible_shape: np.ndarray,
                            sideband: np.ndarray) -> tuple[float, float, float]:
    """(yy fraction, its error, total yield) from a Poisson fit of two unit shapes to the data sidebands."""
    if photon_shape.sum() <= 0 or reducible_shape.sum() <= 0:  # one component only: nothing to measure
        fraction = 1.0 if photon_shape.sum() > 0 else 0.0
        shape = photon_shape if fraction else reducible_shape
        return fraction, 0.0, float(data[sideband].sum() / max(shape[sideband].sum(), 1e-12))
    observed = data[sideband]

    def nll(total: float, fraction: float) -> float:
        expected = total * (fraction * photon_shape + (1 - fraction) * reducible_shape)[sideband]
        expected = np.maximum(expected, 1e-12)
        return float(np.sum(expected - observed * np.log(expected)))

    minuit = Minuit(nll, total=max(float(observed.sum()), 1.0), fraction=0.5)
    minuit.errordef = Minuit.LIKELIHOOD
    minuit.limits = [(0, None), (0.0, 1.0)]
    minuit.migrad()
    minuit.hesse()
    return float(minuit.values["fraction"]), float(minuit.errors["fraction"]), float(minuit.values["total"])


# --------------------------------------------------------------------------- efficiency in m_yy


def _effective(values: np.ndarray, variance: np.ndarray) -> float:
    """The mean weight of a weighted histogram (1 for counts): sum w^2 / sum w."""
    return float(variance.sum() / values.sum()) if values.sum() > 0 else 1.0


def event_weight(values: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """The mean weight of an event per bin, sum w^2 / sum w (1 for counts and where the bin is empty): what one event
    is in the bin, as ``resampled`` draws it."""
    return np.divide(variance, values, out=np.ones_like(values, dtype=np.float64), where=(values > 0) & (variance > 0))


@dataclass(frozen=True)
class Kernel:
    """A Gaussian kernel between bin centres and its first two moments, [bins, bins]: K_ij, K_ij d_ij, K_ij d_ij^2
    with d_ij = m_j - m_i (GeV).  An infinite width is the flat efficiency, the sample's overall ratio: its moments
    are zero, so that the smoother is local-constant there (local-linear at an infinite width would be a straight
    line through the range, not flat)."""

    width: float
    weights: np.ndarray
    first: np.ndarray
    second: np.ndarray

    @property
    def flat(self) -> bool:
        """The infinite width: one efficiency for the whole range."""
        return not np.isfinite(self.width)


def kernel(centres: np.ndarray, bandwidth: float) -> Kernel:
    """The Gaussian kernel of ``bandwidth`` GeV between bin centres (``inf``: the flat efficiency)."""
    distance = centres[None, :] - centres[:, None]
    if not np.isfinite(bandwidth):
        ones, zeros = np.ones_like(distance), np.zeros_like(distance)
        return Kernel(float(bandwidth), ones, zeros, zeros)
    weights = np.exp(-0.5 * (distance / bandwidth) ** 2)
    return Kernel(float(bandwidth), weights, weights * distance, weights * distance**2)


@dataclass(frozen=True)
class KernelSums:
    """The local-linear smoother's sums at every bin: S_k = sum_j K d^k total_j, T_k = sum_j K d^k passed_j."""

    s0: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    t0: np.ndarray
    t1: np.ndarray
    flat: bool = False  # the kernel's: local-constant

    def estimate(self) -> np.ndarray:
        """The local-linear estimate (local-constant for the flat kernel), unclipped; NaN where the kernel holds too
        little total to fit."""
        if self.flat:
            return np.divide(self.t0, self.s0, out=np.full_like(self.t0, np.nan, dtype=np.float64), where=self.s0 > 0)
        top, bottom = self.s2 * self.t0 - self.s1 * self.t1, self.s0 * self.s2 - self.s1**2
        return np.divide(top, bottom, out=np.full_like(top, np.nan, dtype=np.float64),
                         where=bottom > 1e-12 * np.abs(self.s0 * self.s2))

    def efficiency(self) -> np.ndarray:
        """The local-linear efficiency (local-constant for the flat kernel), in [0, 1] (0 where the kernel holds no
        total)."""
        return np.clip(np.nan_to_num(self.estimate(), nan=0.0), 0.0, 1.0)


def kernel_sums(passed: np.ndarray, total: np.ndarray, k: Kernel) -> KernelSums:
    """``KernelSums`` of a histogram (or a stack of replicas [n, bins])."""
    return KernelSums(total @ k.weights.T, total @ k.first.T, total @ k.second.T, passed @ k.weights.T,
                      passed @ k.first.T, k.flat)


def efficiency(passed: np.ndarray, total: np.ndarray, k: Kernel) -> np.ndarray:
    """The kernel-smoothed efficiency passed / total per bin: a local-linear fit at every bin, which, unlike the
    kernel's plain ratio, does not lean toward where the total is largest (a falling m_yy spectrum would pull a
    wide kernel's efficiency toward low mass).  ``passed`` and ``total`` may be stacks of replicas [n, bins]."""
    return kernel_sums(passed, total, k).efficiency()


def leave_one_out_log_likelihood(passed: np.ndarray, failed: np.ndarray, k: Kernel) -> np.ndarray:
    """The binomial log-likelihood of every event, passed or failed (counts per bin), under the local-linear
    efficiency (``efficiency``, the smoother the template uses) that the kernel makes of all the other events; one
    value per row.

    Binned: an event in bin j leaves that bin's kernel sums by K_jj = 1 (and d_jj = 0), so S_0 and, for a passed
    event, T_0 fall by one.  Judging the local-linear estimate and not the kernel's plain ratio matters: the plain
    ratio leans toward where a falling m_yy spectrum puts most events, and a likelihood of it asks for narrow
    kernels where the efficiency is only sloped.  Where the local-linear estimate leaves (0, 1) -- it extrapolates
    at the edges of a sparse sample -- the plain ratio judges the event instead, which never extrapolates: an event
    that no other event predicts (0 for a passed event, 1 for a failed one) still costs -inf, the kernel being too
    narrow to see its neighbours.  The flat kernel's estimate is the plain ratio itself."""
    sums = kernel_sums(passed, passed + failed, k)

    def without(t0: np.ndarray) -> np.ndarray:
        """The estimate at each bin with one of its events left out (S_0 one less, T_0 as given): local-linear,
        else the plain ratio."""
        left = replace(sums, s0=sums.s0 - 1.0, t0=t0)
        linear = left.estimate()
        plain = np.clip(np.divide(left.t0, left.s0, out=np.zeros_like(t0, dtype=np.float64), where=left.s0 > 0),
                        0.0, 1.0)
        return np.where((linear > 0) & (linear < 1), linear, plain)

    eps_passed, eps_failed = without(sums.t0 - 1.0), without(sums.t0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (np.where(passed > 0, passed * np.log(eps_passed), 0.0)
                 + np.where(failed > 0, failed * np.log1p(-eps_failed), 0.0))
    return terms.sum(axis=-1)


@dataclass(frozen=True)
class SmoothedEfficiency:
    """A category's efficiency in m_yy with the kernel the leave-one-out likelihood chose."""

    values: np.ndarray
    kernel: Kernel


def cross_validated_efficiency(passed: np.ndarray, total: np.ndarray, centres: np.ndarray,
                               bandwidths: tuple[float, ...], tolerance: float, unit_passed: np.ndarray,
                               unit_failed: np.ndarray) -> SmoothedEfficiency:
    """The efficiency passed / total smoothed by the widest kernel of ``bandwidths`` (GeV) whose leave-one-out
    binomial log-likelihood is within ``tolerance`` of the best one's: a narrower kernel only where the events ask
    for it.  The likelihood counts events (weights over the bin's mean weight of an event, ``unit_*``), so that a
    category of a few heavy events and one of many light ones are judged by how many events they hold."""
    kernels = [kernel(centres, h) for h in sorted(bandwidths)]
    counts, others = passed / unit_passed, np.maximum(total - passed, 0.0) / unit_failed
    scores = np.array([leave_one_out_log_likelihood(counts, others, k) for k in kernels])
    chosen = kernels[int(np.flatnonzero(scores >= scores.max() - tolerance)[-1])]  # the widest of the good ones
    return SmoothedEfficiency(efficiency(passed, total, chosen), chosen)


# --------------------------------------------------------------------------- replicas


def resampled(values: np.ndarray, variance: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """n Poisson replicas of a histogram, [n, bins]: a weighted bin through its effective count (sum w)^2 / sum w^2."""
    values, variance = np.maximum(values, 0.0), np.maximum(variance, 0.0)
    weight = np.divide(variance, values, out=np.ones_like(values), where=values > 0)
    counts = np.divide(values, weight, out=np.zeros_like(values), where=weight > 0)
    return rng.poisson(counts, size=(n, len(values))) * weight


# --------------------------------------------------------------------------- the template


def build_template(data_ti: np.ndarray, own: Components, edges: np.ndarray, window: MassWindow, config: FitConfig,
                   inclusive: Components | None = None, seed: int = 0, control: Components | None = None
                   ) -> Template | None:
    """The category's background template (None when it has neither continuum MC nor NTNI events).

    Its own shapes where they carry ``config.template_min_statistics`` x the data's statistics (or where
    no inclusive selection is given), else the inclusive shapes times the category's efficiency in
    m_yy, or times its ``control`` selection's efficiency and share where that carries more statistics and the
    direct one falls short (module docstring)."""
    if own.empty():
        return None
    rng = np.random.default_rng(seed)
    side = window.sideband_bins(edges)
    fraction = _regions_fraction(data_ti, own, inclusive, side)
    own_parts = {k: (values, resampled(values, variance, rng, config.template_replicas))
                 for k, (values, variance) in own.parts().items()}
    template = _assemble(data_ti, own_parts, side, OWN, fraction)
    template.own_statistics_ratio = template.statistics_ratio
    if template.statistics_ratio >= config.template_min_statistics or inclusive is None or inclusive.empty():
        return _finished(template, own)
    reweighted = _reweighted(data_ti, own, inclusive, None, edges, window, config, rng, fraction)
    if reweighted.statistics_ratio < config.template_min_statistics and control is not None:
        via_control = _reweighted(data_ti, own, inclusive, control, edges, window, config, rng, fraction)
        if via_control.statistics_ratio > reweighted.statistics_ratio:
            reweighted = via_control
    reweighted.own_statistics_ratio = template.own_statistics_ratio
    return _finished(reweighted, own)


def _reweighted(data_ti: np.ndarray, own: Components, inclusive: Components, control: Components | None,
                edges: np.ndarray, window: MassWindow, config: FitConfig, rng: np.random.Generator,
                fraction: tuple[float, float] | None) -> Template:
    """The template of each sample's inclusive shape times its efficiency into the category: directly, or with a
    ``control`` selection (the category's score cut with a channel requirement dropped) as the efficiency of that
    control selection times the category's flat share of it."""
    centres = 0.5 * (edges[:-1] + edges[1:])
    parts, closure, bandwidths = {}, {}, {}
    for k in COMPONENTS:
        nominal, replicas = np.zeros(len(centres)), np.zeros((config.template_replicas, len(centres)))
        for name, (values, variance) in own.samples(k).items():
            if values.sum() <= 0:
                continue
            base, base_variance = inclusive.samples(k).get(name, (values, variance))
            base = np.maximum(base, values)  # the category is a subset of the inclusive selection
            wide, wide_variance = (values, variance) if control is None else control.samples(k).get(name,
                                                                                                   (values, variance))
            wide = np.clip(wide, values, base)  # the category in its control selection, in the inclusive one
            sample = reweighted_sample(values, variance, wide, wide_variance, base, base_variance, centres, config, rng)
            # with a control, one parameter (the share): the control's efficiency is the control's events' to smooth
            parameters = None if control is None else 1.0
            nominal, replicas = nominal + sample.values, replicas + sample.replicas
            bandwidths[name] = sample.kernel.width
            closure[name] = efficiency_closure(values, variance, base, sample.efficiency, sample.kernel, edges,
                                               window.gof_bin_width, parameters)
        parts[k] = (nominal, replicas)
    method = EFFICIENCY if control is None else CONTROL_EFFICIENCY
    template = _assemble(data_ti, parts, window.sideband_bins(edges), method, fraction)
    template.closure, template.bandwidths = closure, bandwidths
    return template


@dataclass(frozen=True)
class ReweightedSample:
    """One sample's inclusive shape times its efficiency into the category, with replicas."""

    values: np.ndarray
    replicas: np.ndarray
    efficiency: np.ndarray
    kernel: Kernel        # the efficiency's, chosen by the category's events


def _regions_fraction(data_ti: np.ndarray, own: Components, inclusive: Components | None, side: np.ndarray
                      ) -> tuple[float, float] | None:
    """The category's yy fraction from its TI and NTNI data sidebands, with the selection's simulated NTNI/TI ratios
    (the inclusive one's where given: a photon's chance to fail identification or isolation is the selection's, and
    the category holds few simulated fakes); None where no reducible MC gives them."""
    regions = (inclusive if inclusive is not None else own).regions
    ratios = regions.ntni_per_ti(side) if regions is not None else None
    if ratios is None:
        return None
    return photon_fraction_from_regions(float(data_ti[side].sum()), float(own.ntni[side].sum()), ratios)


def reweighted_sample(values: np.ndarray, variance: np.ndarray, wide: np.ndarray, wide_variance: np.ndarray,
                      base: np.ndarray, base_variance: np.ndarray, centres: np.ndarray, config: FitConfig,
                      rng: np.random.Generator) -> ReweightedSample:
    """A sample's category shape as its inclusive shape ``base`` times the cross-validated efficiency of the category's
    control selection ``wide`` in m_yy times the category's share of it, flat in m_yy: the requirement the control
    drops (a b-tag) acts on jets, not on the photons, and the sample's mistagged events are few where its control
    events are many (``wide`` = the category's own events: its own efficiency, the share 1).  The replicas
    resample the category, the rest of its control and the rest of the selection independently, with the nominal's
    kernel (the leave-one-out likelihood of a Poisson-resampled histogram sees its duplicated events and asks for
    the narrowest kernel)."""
    rest, rest_variance = wide - values, np.maximum(wide_variance - variance, 0.0)
    others, others_variance = base - wide, np.maximum(base_variance - wide_variance, 0.0)
    units = event_weight(wide, wide_variance), event_weight(others, others_variance)
    eps = cross_validated_efficiency(wide, base, centres, config.efficiency_bandwidths, config.efficiency_tolerance,
                                     *units)
    share = values.sum() / wide.sum()
    passed = resampled(values, variance, rng, config.template_replicas)
    passed_rest = resampled(rest, rest_variance, rng, config.template_replicas)
    failed = resampled(others, others_variance, rng, config.template_replicas)
    in_control = passed + passed_rest
    again = efficiency(in_control, in_control + failed, eps.kernel)
    shares = passed.sum(axis=1, keepdims=True) / np.maximum(in_control.sum(axis=1, keepdims=True), 1e-300)
    return ReweightedSample(base * eps.values * share, (in_control + failed) * again * shares, eps.values * share,
                            eps.kernel)


def _assemble(data_ti: np.ndarray, parts: dict[str, tuple[np.ndarray, np.ndarray]], side: np.ndarray,
              method: str, measured: tuple[float, float] | None = None) -> Template:
    """The template of two component shapes (nominal, replicas) in the yy fraction ``measured`` from the TI and NTNI
    counts, or where it is None in the fraction a fit of the two shapes to the TI data sidebands finds; the yield
    makes the template's sidebands hold the data's."""
    (mc, mc_replicas), (ntni, ntni_replicas) = parts["continuum"], parts["ntni"]
    one_event = {k: _one_event(values, replicas) for k, (values, replicas) in parts.items()}

    def shape(component: str, rows: np.ndarray) -> np.ndarray:
        return _sideband_floored(_unit_rows(rows), side, np.sqrt(one_event[component]))

    photon, reducible = shape("continuum", mc), shape("ntni", ntni)
    if measured is None:
        fraction, error, total = measure_photon_fraction(data_ti, photon, reducible, side)
    else:
        fraction, error = _present_fraction(*measured, photon, reducible)
        mixture = (fraction * photon + (1 - fraction) * reducible)[side].sum()
        total = float(data_ti[side].sum() / mixture) if mixture > 0 else 0.0

    def combined(photon: np.ndarray, reducible: np.ndarray) -> np.ndarray:
        return total * (fraction * photon + (1 - fraction) * reducible)

    values = combined(photon, reducible)
    replicas = combined(shape("continuum", mc_replicas), shape("ntni", ntni_replicas))
    variance = replicas.var(axis=0, ddof=1) if len(replicas) > 1 else np.zeros_like(values)
    # one event of each component per bin at least: an empty bin is not known to be empty
    floor = total**2 * (fraction**2 * one_event["continuum"] + (1 - fraction) ** 2 * one_event["ntni"])
    return Template(values, variance, np.maximum(variance, floor), replicas, fraction, error,
                    SIDEBAND_FIT if measured is None else REGIONS, total, float(data_ti[side].sum()),
                    float(values[side].sum()), method, float("nan"), 0.0, 0.0)


def _present_fraction(fraction: float, error: float, photon: np.ndarray, reducible: np.ndarray
                      ) -> tuple[float, float]:
    """The measured yy fraction, 1 or 0 where only one component has events (nothing else could hold them)."""
    if reducible.sum() <= 0:
        return 1.0, 0.0
    if photon.sum() <= 0:
        return 0.0, 0.0
    return fraction, error


def _finished(template: Template, own: Components) -> Template:
    """The template with the category's own event counts recorded."""
    mc, variance = np.maximum(own.mc, 0.0), np.maximum(own.mc_variance, 0.0)
    template.mc_effective_events = float(mc.sum() ** 2 / variance.sum()) if variance.sum() > 0 else 0.0
    template.ntni_events = float(own.ntni.sum())
    return template


def _sideband_floored(unit: np.ndarray, side: np.ndarray, floor: float) -> np.ndarray:
    """Unit shapes (rows) holding at least ``floor`` (one event of the component) in the sidebands, spread flat
    there: a shape whose sidebands are empty is not known to be empty, and the data sidebands could not set its
    yield (a fit would shrink it to nothing under the peak)."""
    if floor <= 0:
        return unit
    missing = np.maximum(floor - unit[..., side].sum(axis=-1, keepdims=True), 0.0)
    missing = np.where(unit.sum(axis=-1, keepdims=True) > 0, missing, 0.0)  # an empty shape stays empty
    floored = unit + np.where(side, missing / side.sum(), 0.0)
    return _unit_rows(floored)


def _unit_rows(values: np.ndarray) -> np.ndarray:
    """Each row (or the one array) normalised to unit sum (zero where empty)."""
    total = values.sum(axis=-1, keepdims=True)
    return np.divide(values, total, out=np.zeros_like(values, dtype=np.float64), where=total > 0)


def _one_event(values: np.ndarray, replicas: np.ndarray) -> float:
    """The variance one event brings to a bin of this component's unit shape: 1 / N_eff^2, N_eff = (sum v)^2 / sum
    var(v) from the replicas (0 for an empty component)."""
    spread = float(replicas.var(axis=0).sum()) if len(replicas) > 1 else 0.0
    return spread**2 / values.sum() ** 4 if values.sum() > 0 and spread > 0 else 0.0


def _effective_parameters(total: np.ndarray, k: Kernel) -> float:
    """The smoother's effective parameters, the trace of its hat matrix: a bin's own weight in its local-linear fit,
    K_jj total_j S_2 / (S_0 S_2 - S_1^2), summed (1 for the flat efficiency, one ratio)."""
    if k.flat:
        return 1.0
    sums = kernel_sums(np.zeros_like(total), total, k)
    bottom = sums.s0 * sums.s2 - sums.s1**2
    return float(np.sum(np.divide(total * sums.s2, bottom, out=np.zeros_like(total),
                                  where=bottom > 1e-12 * sums.s0 * sums.s2)))


def efficiency_closure(passed: np.ndarray, variance: np.ndarray, total: np.ndarray, eps: np.ndarray, k: Kernel,
                       edges: np.ndarray, width: float, parameters: float | None = None) -> Closure | None:
    """How well the smoothed efficiency ``eps`` (``efficiency`` with the kernel ``k``) describes the category's own
    events: Pearson chi2 of their counts against eps x total in ``width`` GeV bins (effective counts of the
    category's mean weight), with the smoother's effective parameters, the trace of its hat matrix, taken off the
    degrees of freedom (``parameters`` where the efficiency was not smoothed from these events)."""
    from scipy import stats

    if passed.sum() <= 0:
        return None
    scale = _effective(passed, variance)
    group = gof_groups(edges, width)
    observed = np.bincount(group, weights=passed) / scale
    predicted = np.bincount(group, weights=eps * total) / scale
    use = predicted > 0
    chi2 = float(np.sum((observed[use] - predicted[use]) ** 2 / predicted[use]))
    effective_parameters = _effective_parameters(total, k) if parameters is None else parameters
    ndf = float(use.sum()) - effective_parameters
    return Closure(chi2, ndf, float(stats.chi2.sf(chi2, ndf)) if ndf > 0 else float("nan"))
