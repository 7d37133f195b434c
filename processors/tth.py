"""The ttH(yy) coffea processor: selection, regions, channels, features, categories, fill.

``TthProcessor.process`` is a short composition of named steps, each a method a subclass can
override (HiggsDNA style):

    build_objects -> select_diphoton -> assign_region -> select_jets_and_leptons
    -> assign_channel -> assign_control -> compute_features -> score -> assign_category -> fill

Template control selections.  Events in no channel but in a channel's looser
``template_control`` selection (the b-tag requirement dropped) are scored and categorised like
the channel's own and fill ``mgg_control``: with ``mgg`` the category's control selection, whose
efficiency in m_yy the background templates take where the category's own is short of events
(``ttH_adv.stats.templates`` reweights ``mgg_inclusive``, every selected diphoton event, to each
category).

Scorings.  The processor scores any number of models in one pass (``Scoring``): the run's model
(``--model``, empty label: histograms ``mgg``/``mgg_control``, dump column ``score``) or, for a
comparison, several, each with its own score categories (``mgg@<label>``, ``score@<label>``).

Regions.  After the diphoton selection every event is in exactly one region:
**TI** when both photons pass tight ID and isolation, **NTNI** otherwise (at least one of the
two photons fails tight ID or isolation).  TI is the signal region; NTNI is the data-driven
background model.  Data TI events in the blinding window are removed (step ``unblinded``)
unless ``unblind=True``; NTNI data is a control region and never blinded.

Exact accumulation.  Per-event raw weights (mcWeight x scale factors) are rounded to
multiples of 2^-24 (relative 6e-8, far below any uncertainty) and their squares likewise, so
every per-bin sum is exact in float64 and results are bit-identical whatever the executor or
chunk size.  The luminosity x cross-section / sum-of-weights normalisation is applied once per
dataset after accumulation (``ttH_adv.output.normalise``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

from ttH_adv.config import AnalysisConfig, ChannelCuts, InputFormat, category_names
from ttH_adv.errors import TthAdvError
from ttH_adv.event import selections as sel
from ttH_adv.event.columns import Collection
from ttH_adv.event.features import all_features, feature_matrix, feature_names
from ttH_adv.event.selections import NO_CHANNEL, REGIONS, cutflow_steps
from ttH_adv.event.systematics import Variation, variations, weight_branches
from ttH_adv.inference import OnnxScorer
from ttH_adv.inputs import objects as obj
from ttH_adv.inputs.manifest import normalisation
from ttH_adv.output import (
    CONTROL_HISTOGRAM,
    INCLUSIVE,
    INCLUSIVE_HISTOGRAM,
    MASS_HISTOGRAM,
    PROBABILITY_BINS,
    PROBABILITY_HISTOGRAM,
    labelled,
)

# coffea warns, for every PHYSLITE chunk, of each branch uproot cannot interpret (ElementLinks to
# vertices, the aux store's base): branches the analysis never reads.  Here, so workers see it too.
warnings.filterwarnings("ignore", r"Skipping \S+ as it is (not interpretable by Uproot|it cannot be represented)",
                        UserWarning)

WEIGHT_QUANTUM = 2.0**-24


@dataclass(frozen=True)
class Scoring:
    """A model scored inside the processor and the score categories it defines (empty: the channels)."""

    label: str                                  # "" for the run's only model (see ``labelled``)
    model_path: str
    categories: dict[str, tuple[float, ...]] = field(default_factory=dict)  # per channel, descending


def chunk_id(path: str, start: int, stop: int) -> str:
    """The identifier a processed chunk is recorded under in the output's bookkeeping."""
    return f"{path}:{start}-{stop}"


def quantise(weights: np.ndarray) -> np.ndarray:
    """Round weights to multiples of 2^-24 so that sums of them are exact in float64."""
    return np.round(np.asarray(weights, dtype=np.float64) / WEIGHT_QUANTUM) * WEIGHT_QUANTUM


@dataclass
class ChunkInfo:
    dataset: str
    is_data: bool
    filename: str
    entry_start: int
    entry_stop: int
    norm: float  # luminosity x cross-section / sum of weights (1 for data)
    role: str    # data | signal | resonant | continuum (the manifest's)
    format: InputFormat  # the dataset's input format profile (its decisions and readers)

    @classmethod
    def from_metadata(cls, metadata: dict, config: AnalysisConfig) -> ChunkInfo:
        """Chunk facts from the events' metadata (set by coffea's Runner and the manifest)."""
        return cls(metadata["dataset"], bool(metadata.get("is_data", False)), metadata.get("filename", ""),
                   int(metadata.get("entrystart", 0)), int(metadata.get("entrystop", 0)), normalisation(metadata),
                   metadata.get("role", ""), config.format(metadata.get("format")))


@dataclass
class PhysicsObjects:
    photons: Collection
    jets: Collection
    leptons: Collection
    met: np.ndarray
    trigger: np.ndarray
    event_number: np.ndarray   # selects a k-fold model's network; keys the feature dump


@dataclass
class Selection:
    """Result of the selection steps for one variation (arrays over all events of the chunk)."""

    mass: np.ndarray
    steps: dict[str, np.ndarray]          # cutflow masks, in cutflow_steps() order
    passed: np.ndarray                    # final diphoton selection (after blinding)
    is_ti: np.ndarray
    channel: np.ndarray                   # had | lep | none, for passed events
    control: np.ndarray                   # the channel whose template control holds an event in no channel, else none
    features: dict[str, np.ndarray] = field(default_factory=dict)  # for passed events
    scores: dict[str, np.ndarray] = field(default_factory=dict)    # per scoring label: NaN outside channel/control
    # per label of a multi-class model: every class's probability [passed, classes], NaN where the score is
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)
    categories: dict[str, np.ndarray] = field(default_factory=dict)          # per label: channel events' categories
    control_categories: dict[str, np.ndarray] = field(default_factory=dict)  # per label: control events' categories
    bin_indices: dict[tuple, Any] = field(default_factory=dict)  # histogram bins of the events, per histogram

    def bins(self, key: tuple, compute: Callable[..., Any], *args: Any) -> Any:
        """``compute(*args)``, the histogram bin index under ``key``, once per selection (weight variations share it)."""
        if key not in self.bin_indices:
            self.bin_indices[key] = compute(*args)
        return self.bin_indices[key]


@dataclass
class PhotonStage:
    """The selection steps that read only the photons and the trigger (``TthProcessor.select_photons``)."""

    diphoton: sel.Diphoton               # every event's leading pair
    steps: dict[str, np.ndarray]         # the common cutflow steps
    is_ti: np.ndarray
    idx: np.ndarray                      # the passed events (after blinding)
    passed_diphoton: sel.Diphoton        # their pairs


class Reuse:
    """One chunk's memo of selection stages, keyed by the identity of each stage's inputs.

    The first result of a stage (the nominal's) is kept; a later call with the very same input
    objects gets it back instead of recomputing it.  Object variations replace only the
    collection they shift, so the untouched collections -- and the stages that read only them --
    are the nominal's objects, and reusing their results is exact."""

    def __init__(self) -> None:
        self.kept: dict[str, tuple[tuple, Any]] = {}

    def __call__(self, stage: str, inputs: tuple, compute: Callable[[], Any]) -> Any:
        kept = self.kept.get(stage)
        if kept is not None and all(a is b for a, b in zip(kept[0], inputs, strict=True)):
            return kept[1]
        result = compute()
        self.kept.setdefault(stage, (inputs, result))
        return result


class TthProcessor(processor.ProcessorABC):
    """Selection and categorisation of ttH(yy) events; fills m_yy histograms and cutflows."""

    def __init__(self, config: AnalysisConfig, *, systematics: str = "none", dump_dir: str | None = None,
                 unblind: bool = False, model_path: str | None = None, scorings: Iterable[Scoring] = (),
                 varied_roles: Iterable[str] | None = None) -> None:
        self.config = config
        self.channels = tuple(config.channels)
        self.systematics = systematics
        # the MC whose variations are filled (None: all); the others fill zeros in the systematic slices
        self.varied_roles = None if varied_roles is None else tuple(varied_roles)
        self.variations = variations(config, systematics)
        self.dump_dir = str(dump_dir) if dump_dir else None
        self.unblind = unblind
        if any(config.categories.values()) and not model_path:
            raise TthAdvError("score categories are configured but no model (--model) is given")
        scorings = ([Scoring("", model_path, dict(config.categories))] if model_path else []) + list(scorings)
        labels = [s.label for s in scorings]
        if len(set(labels)) < len(labels) or (len(labels) > 1 and "" in labels):
            raise TthAdvError(f"scorings need distinct, non-empty labels, got {labels}")
        self.scorings = {s.label: s for s in scorings}
        # Checked against ttH_adv.event.features here, before any event is read.
        self.scorers = {s.label: OnnxScorer(s.model_path) for s in scorings}
        # Imported here, not at the top: pyarrow and pandas load only where the processor is
        # built, not in every worker (0.15 s of its start).
        from ttH_adv.dump import provenance

        self.provenance = provenance(config, ",".join(s.sha256 for s in self.scorers.values()) or None)

    @property
    def scorer(self) -> OnnxScorer | None:
        """The run's only model (None without one, or with several)."""
        return self.scorers.get("")

    # ------------------------------------------------------------------ output

    def category_bounds(self) -> dict[str, dict[str, tuple[float, ...]]]:
        """Per histogram label (one per scoring; "" without a model), the score boundaries per channel."""
        return {label: s.categories for label, s in self.scorings.items()} or {"": {}}

    def categories(self, label: str = "") -> list[str]:
        """Category labels of a scoring's histogram axis (score categories and a multi-class model's control
        categories, or the channels)."""
        return category_names(self.config.channels, self.category_bounds()[label], self.controls(label).values())

    def controls(self, label: str = "") -> dict[int, str]:
        """A multi-class model's control categories: its class index -> the category suffix (``control_categories``
        of the configuration, for the classes the model has)."""
        scorer = self.scorers.get(label)
        classes = scorer.classes if scorer is not None else []
        return {classes.index(c): suffix for c, suffix in self.config.control_categories.items() if c in classes}

    def cutflow_steps(self) -> tuple[str, ...]:
        """This processor's cutflow step names, in order."""
        return cutflow_steps(self.channels)

    def empty_histogram(self, dataset: str, label: str = "", systematics: list[str] | None = None,
                        categories: list[str] | None = None) -> hist.Hist:
        """m_yy histogram with dataset, region, category (the scoring's by default) and systematic axes (every
        variation by default)."""
        m = self.config.mass
        return hist.Hist(
            hist.axis.StrCategory([dataset], name="dataset", growth=True),
            hist.axis.StrCategory(list(REGIONS), name="region"),
            hist.axis.StrCategory(self.categories(label) if categories is None else categories, name="category"),
            hist.axis.StrCategory(systematics or [v.name for v in self.variations], name="systematic"),
            hist.axis.Regular(m.n_bins, m.low, m.high, name="mgg", label="m_yy [GeV]"),
            storage=hist.storage.Weight(),
        )

    def empty_probabilities(self, dataset: str, label: str, classes: list[str]) -> hist.Hist:
        """A multi-class model's class probabilities per dataset, region and category (nominal only)."""
        return hist.Hist(
            hist.axis.StrCategory([dataset], name="dataset", growth=True),
            hist.axis.StrCategory(list(REGIONS), name="region"),
            hist.axis.StrCategory(self.categories(label), name="category"),
            hist.axis.StrCategory(list(classes), name="class"),
            hist.axis.Regular(PROBABILITY_BINS, 0.0, 1.0, name="probability", label="class probability"),
            storage=hist.storage.Weight(),
        )

    def empty_output(self, dataset: str) -> dict:
        """The accumulator: histograms, cutflow and bookkeeping (dicts merge by key, numbers add).

        Per scoring label: ``mgg`` (every variation) and ``mgg_control`` (the template control
        selections, nominal only); once, ``mgg_inclusive``: every selected diphoton event (nominal only),
        the base of the background templates."""
        histograms = {}
        for label in self.category_bounds():
            histograms[labelled(MASS_HISTOGRAM, label)] = self.empty_histogram(dataset, label)
            histograms[labelled(CONTROL_HISTOGRAM, label)] = self.empty_histogram(dataset, label, ["nominal"])
        histograms[INCLUSIVE_HISTOGRAM] = self.empty_histogram(dataset, systematics=["nominal"], categories=[INCLUSIVE])
        for label, scorer in self.scorers.items():
            if scorer.classes:
                histograms[labelled(PROBABILITY_HISTOGRAM, label)] = self.empty_probabilities(dataset, label,
                                                                                              scorer.classes)
        return {"histograms": histograms, "cutflow": {}, "events_read": {}, "chunks": {}, "objects": {}}

    # ------------------------------------------------------------------ steps

    def extra_fields(self, is_data: bool) -> dict[str, tuple[str, ...]]:
        """Fields read beyond the format's own: the pT-shift field, only when object variations run on MC."""
        extra = () if is_data else tuple(dict.fromkeys(f for v in self.variations for f in v.object_fields))
        return {name: extra for name in obj.COLLECTIONS}

    def object_fields(self, fmt: InputFormat, is_data: bool) -> dict[str, tuple[str, ...]]:
        """The fields read per collection: the format's (kinematics and what its decisions need) and the extra ones."""
        extra = self.extra_fields(is_data)
        return {name: (*fmt.fields(name), *extra[name]) for name in obj.COLLECTIONS}

    def branches_read(self, fmt: InputFormat, is_data: bool) -> list[str]:
        """Every branch ``process`` reads from a file of ``fmt`` for data or MC (read in one go: coffea's preload)."""
        weights = () if is_data else weight_branches(self.config, self.systematics)
        return obj.branches_read(fmt, self.object_fields(fmt, is_data), is_data, weights)

    def build_objects(self, events: ak.Array, info: ChunkInfo) -> PhysicsObjects:
        """GeV physics objects in the format's fields, whatever the input format (``ttH_adv.inputs.objects``)."""
        fmt = info.format
        collections = obj.collections(events, fmt, self.extra_fields(info.is_data))
        return PhysicsObjects(**collections, met=obj.missing_et(events, fmt, collections),
                              trigger=obj.trigger(events, fmt), event_number=obj.event_number(events, fmt))

    def count_objects(self, objs: PhysicsObjects, info: ChunkInfo) -> dict[str, int]:
        """Objects read and passing each object selection, over all events (before any event selection and
        overlap removal): what a reader of a new format is checked by."""
        fmt, photons, jets = info.format, objs.photons, objs.jets
        accepted = sel.photon_in_acceptance(photons, self.config.photons)
        selected_jets = sel.select_jets(jets, self.config.jets, fmt.jvt)
        counts = {"photons": photons.pt, "photons_accepted": accepted,
                  "photons_tight_isolated": accepted & sel.photon_is_tight_isolated(photons, fmt),
                  "jets": jets.pt, "jets_selected": selected_jets, "jets_btagged": selected_jets & fmt.btag(jets),
                  "leptons": objs.leptons.pt,
                  "leptons_selected": sel.select_leptons(objs.leptons, self.config.leptons, fmt)}
        return {name: int(np.count_nonzero(v)) if v.dtype == bool else len(v) for name, v in counts.items()}

    def select_diphoton(self, objs: PhysicsObjects, info: ChunkInfo) -> tuple[sel.Diphoton, dict[str, np.ndarray]]:
        """Photon acceptance, leading pair, pT/m_yy, mass window: the common cutflow steps."""
        cuts, window = self.config.photons, self.config.mass
        d = sel.leading_diphoton(objs.photons, cuts)
        steps = {"all": np.ones(len(d.mass), bool)}
        steps["trigger"] = steps["all"] & objs.trigger
        steps["two_photons"] = steps["trigger"] & d.has_pair
        steps["relative_pt"] = steps["two_photons"] & sel.diphoton_passes_relative_pt(d, cuts)
        steps["mass_window"] = steps["relative_pt"] & sel.in_mass_window(d.mass, window.low, window.high)
        return d, steps

    def assign_region(self, d: sel.Diphoton, info: ChunkInfo) -> np.ndarray:
        """True for TI (both photons tight and isolated, as the input format decides), False for NTNI."""
        fmt = info.format
        return d.has_pair & sel.photon_is_tight_isolated(d.lead, fmt) & sel.photon_is_tight_isolated(d.sublead, fmt)

    def blinded(self, mass: np.ndarray, is_ti: np.ndarray, info: ChunkInfo) -> np.ndarray:
        """Events hidden by blinding: data, TI, m_yy inside the blinding window."""
        if self.unblind or not info.is_data:
            return np.zeros(len(mass), bool)
        return is_ti & self.config.mass.in_window(mass)

    def select_jets_near(self, jets: Collection, d: sel.Diphoton, info: ChunkInfo) -> tuple[Collection, np.ndarray]:
        """Selected jets away from the two photons (Delta R > 0.4), and the b-jet count."""
        fmt = info.format
        jets = jets.select(sel.select_jets(jets, self.config.jets, fmt.jvt) & sel.away_from(jets, d.lead, d.sublead))
        return jets, jets.count(fmt.btag(jets))

    def select_leptons_near(self, leptons: Collection, d: sel.Diphoton, info: ChunkInfo) -> Collection:
        """Selected leptons away from the two photons (Delta R > 0.4)."""
        lep_mask = sel.select_leptons(leptons, self.config.leptons, info.format)
        return leptons.select(lep_mask & sel.away_from(leptons, d.lead, d.sublead))

    def assign_channel(self, n_leptons: np.ndarray, n_jets: np.ndarray, n_bjets: np.ndarray,
                       cuts: dict[str, ChannelCuts] | None = None) -> np.ndarray:
        """'lep', 'had' or 'none' per event, the first channel whose cuts pass (the channels by default;
        their cuts are disjoint in lepton count)."""
        cuts = self.config.channels if cuts is None else cuts
        code = np.full(len(n_jets), len(cuts))  # integer codes: comparing object arrays of names is slow
        for i, channel_cuts in reversed(list(enumerate(cuts.values()))):  # the first that passes is written last
            code[sel.passes_channel(n_leptons, n_jets, n_bjets, channel_cuts)] = i
        return np.array([*cuts, NO_CHANNEL], dtype=object)[code]

    def assign_control(self, n_leptons: np.ndarray, n_jets: np.ndarray, n_bjets: np.ndarray,
                       channel: np.ndarray) -> np.ndarray:
        """The channel whose template control selection holds an event that is in no channel, else 'none'."""
        control = self.assign_channel(n_leptons, n_jets, n_bjets, self.config.template_control)
        control[channel != NO_CHANNEL] = NO_CHANNEL
        return control

    def compute_features(self, d: sel.Diphoton, jets: Collection, n_b: np.ndarray, leptons: Collection,
                         met: np.ndarray, mass: np.ndarray) -> dict[str, np.ndarray]:
        """Every classifier feature (``ttH_adv.event.features``) for the given events."""
        return all_features(d.lead, d.sublead, mass, jets, n_b, leptons, met)

    def score(self, features: dict[str, np.ndarray], event_number: np.ndarray, mass: np.ndarray,
              scored: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Each model's signal score for the ``scored`` events, NaN for the others (per scoring label), and each
        multi-class model's class probabilities [events, classes] alike.

        Only events in a channel or a template control selection are ever categorised, so only
        they are scored: the models' cost follows the selected fraction.  A k-fold model scores
        each event with the network that did not train on it (chosen by its event number inside
        the graph), so every score written is out-of-fold.
        """
        rows = np.flatnonzero(scored)
        scores, probabilities = {}, {}
        for label, scorer in self.scorers.items():
            shapes = [(len(scored),)] + ([(len(scored), len(scorer.classes))] if scorer.classes else [])
            outputs = [np.full(shape, np.nan, dtype=np.float32) for shape in shapes]
            if len(rows):
                names = feature_names(scorer.feature_set)
                X = feature_matrix({name: features[name][rows] for name in names}, scorer.feature_set)
                for full, part in zip(outputs, scorer.outputs(X, event_number[rows], mass[rows]), strict=True):
                    full[rows] = part
            scores[label] = outputs[0]
            if scorer.classes:
                probabilities[label] = outputs[1]
        return scores, probabilities

    def assign_category(self, channel: np.ndarray, score: np.ndarray | None, bounds: dict[str, tuple[float, ...]],
                        probabilities: np.ndarray | None = None, controls: dict[int, str] | None = None
                        ) -> np.ndarray:
        """<channel>_<i> from a model's score boundaries (1 = most signal-like), the channel without them; below the
        last boundary, <channel>_<suffix> where the most probable class is one of ``controls`` (class index ->
        suffix, a multi-class model's control categories)."""
        category = channel.copy()
        for name, channel_bounds in bounds.items():
            if not channel_bounds:
                continue
            in_channel = channel == name
            below = (score[in_channel, None] < np.asarray(channel_bounds)[None, :]).sum(axis=1)
            labels = np.array([f"{name}_{i + 1}" for i in range(len(channel_bounds))] + [NO_CHANNEL], dtype=object)
            assigned = labels[below]
            if controls and probabilities is not None:
                likeliest = np.argmax(np.nan_to_num(probabilities[in_channel], nan=-1.0), axis=1)
                for index, suffix in controls.items():
                    assigned[(below == len(channel_bounds)) & (likeliest == index)] = f"{name}_{suffix}"
            category[in_channel] = assigned
        return category

    # ------------------------------------------------------------------ composition

    def shifted(self, objs: PhysicsObjects, variation: Variation) -> PhysicsObjects:
        """Objects with an object variation applied (unchanged for other variations)."""
        return variation.varied(objs)

    def select_photons(self, objs: PhysicsObjects, info: ChunkInfo) -> PhotonStage:
        """The steps that read only the photons and the trigger: diphoton, region, blinding, the passed events."""
        d, steps = self.select_diphoton(objs, info)
        is_ti = self.assign_region(d, info)
        steps["unblinded"] = steps["mass_window"] & ~self.blinded(d.mass, is_ti, info)
        idx = np.flatnonzero(steps["unblinded"])
        return PhotonStage(d, steps, is_ti, idx, d.take(idx))

    def select(self, objs: PhysicsObjects, info: ChunkInfo, reuse: Reuse | None = None) -> Selection:
        """Run every selection step on one set of objects.

        With ``reuse`` (one per chunk), a stage whose inputs are the very objects an earlier call
        saw takes that call's result: a variation that shifts only the jets keeps the nominal
        photon and lepton stages, with results identical to running them again."""
        reuse = Reuse() if reuse is None else reuse
        ph = reuse("photons", (objs.photons, objs.trigger), lambda: self.select_photons(objs, info))
        steps, is_ti, idx, dp = dict(ph.steps), ph.is_ti, ph.idx, ph.passed_diphoton
        passed = steps["unblinded"]
        jets, n_b = reuse("jets", (objs.jets, dp),
                          lambda: self.select_jets_near(objs.jets.take_events(idx), dp, info))
        leptons = reuse("leptons", (objs.leptons, dp),
                        lambda: self.select_leptons_near(objs.leptons.take_events(idx), dp, info))
        channel = self.assign_channel(leptons.counts, jets.counts, n_b)
        control = self.assign_control(leptons.counts, jets.counts, n_b, channel)
        features = self.compute_features(dp, jets, n_b, leptons, objs.met[idx], dp.mass)
        scores, probabilities = self.score(features, objs.event_number[idx], dp.mass,
                                           (channel != NO_CHANNEL) | (control != NO_CHANNEL))
        categories, control_categories = {}, {}
        for label, bounds in self.category_bounds().items():
            multi = probabilities.get(label), self.controls(label)
            categories[label] = self.assign_category(channel, scores.get(label), bounds, *multi)
            control_categories[label] = self.assign_category(control, scores.get(label), bounds, *multi)
        in_channel = {}
        for name in self.channels:  # per-event channel masks over the whole chunk
            in_channel[name] = np.zeros(len(passed), bool)
            in_channel[name][idx] = channel == name
        for region, in_region in (("TI", is_ti), ("NTNI", ~is_ti)):
            steps[region] = passed & in_region
            for name in self.channels:
                steps[f"{region}_{name}"] = steps[region] & in_channel[name]
        return Selection(ph.diphoton.mass, steps, passed, is_ti, channel, control, features, scores, probabilities,
                         categories, control_categories)

    def raw_weights(self, events: ak.Array, info: ChunkInfo) -> np.ndarray:
        """mcWeight x scale factors (1 for data), quantised; normalisation comes later."""
        if info.is_data:
            return np.ones(len(events))
        return quantise(obj.mc_weight(events, info.format))

    def process(self, events: ak.Array) -> dict:
        """Process one chunk: every variation's selection, histograms, cutflow, dump."""
        info = ChunkInfo.from_metadata(events.metadata, self.config)
        out = self.empty_output(info.dataset)
        out["events_read"][info.dataset] = len(events)
        out["chunks"][info.dataset] = {chunk_id(info.filename, info.entry_start, info.entry_stop): 1}
        objs = self.build_objects(events, info)
        out["objects"][info.dataset] = self.count_objects(objs, info)
        weights = self.raw_weights(events, info)
        varied = not info.is_data and (self.varied_roles is None or info.role in self.varied_roles)
        run_variations = [v for v in self.variations if v.is_nominal or varied]
        nominal: Selection | None = None
        reuse = Reuse()  # the nominal stages, for variations that leave their inputs unchanged
        for variation in run_variations:
            if variation.keeps_selection and nominal is not None:
                selection = nominal
            else:
                selection = self.select(self.shifted(objs, variation), info, reuse)
            w = quantise(weights * variation.weight_factor(events, selection))
            self.fill(out, info, selection, w, variation.name)
            if variation.is_nominal:
                nominal = selection
                out["cutflow"][info.dataset] = self.cutflow(selection, weights)
            if self.dump_dir and not variation.is_weight:
                self.dump(info, events, selection, weights, objs.event_number, variation)
        return out

    def fill(self, out: dict, info: ChunkInfo, s: Selection, w: np.ndarray, systematic: str) -> None:
        """Each scoring's histograms: its categories of this variation, its control categories (nominal only)."""
        for label in self.category_bounds():
            h = out["histograms"][labelled(MASS_HISTOGRAM, label)]
            self.fill_histogram(h, s.bins(("channel", label), self.bin_index, h, s, s.categories[label]), w, systematic)
            if systematic == "nominal":
                h = out["histograms"][labelled(CONTROL_HISTOGRAM, label)]
                index = s.bins(("control", label), self.bin_index, h, s, s.control_categories[label])
                self.fill_histogram(h, index, w, systematic)
                if label in s.probabilities:
                    self.fill_probabilities(out["histograms"][labelled(PROBABILITY_HISTOGRAM, label)], s, label, w)
        if systematic == "nominal":
            h = out["histograms"][INCLUSIVE_HISTOGRAM]
            everyone = np.full(len(s.channel), INCLUSIVE, dtype=object)
            self.fill_histogram(h, self.bin_index(h, s, everyone), w, systematic)

    def fill_probabilities(self, h: hist.Hist, s: Selection, label: str, w: np.ndarray) -> None:
        """Add each categorised event's class probabilities, one entry per class, to h (exact bincount sums)."""
        passed = np.flatnonzero(s.passed)
        categories = list(h.axes["category"])
        category_idx = _index_in(s.categories[label], categories)
        keep = np.flatnonzero(category_idx >= 0)
        probabilities = s.probabilities[label][keep]                        # [events, classes]
        n_classes, axis = probabilities.shape[1], h.axes["probability"]
        bins = np.clip(np.asarray(axis.index(probabilities.reshape(-1))).reshape(probabilities.shape), 0,
                       axis.size - 1)                                       # p = 1 into the last bin
        region_idx = np.where(s.is_ti[passed[keep]], 0, 1)
        shape = (len(REGIONS), len(categories), n_classes, axis.size)
        flat = np.ravel_multi_index((np.repeat(region_idx, n_classes), np.repeat(category_idx[keep], n_classes),
                                     np.tile(np.arange(n_classes), len(keep)), bins.reshape(-1)), shape)
        values, variances = _weighted_counts(flat, np.repeat(w[passed[keep]], n_classes), shape)
        view = h.view()
        view["value"][0] += values
        view["variance"][0] += variances

    def bin_index(self, h: hist.Hist, s: Selection, category: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(events, flat bin) of the passed events with a category on h's axis and m_yy inside it.

        The bin of an event depends only on the selection, so weight variations, which keep the
        nominal selection, reuse it (``Selection.bins``)."""
        mass_axis = h.axes["mgg"]
        categories = list(h.axes["category"])
        passed = np.flatnonzero(s.passed)
        region_idx = np.where(s.is_ti[passed], 0, 1)
        category_idx = _index_in(category, categories)
        mass_idx = np.asarray(mass_axis.index(s.mass[passed])).reshape(-1)
        keep = np.flatnonzero((category_idx >= 0) & (mass_idx >= 0) & (mass_idx < mass_axis.size))
        shape = (len(REGIONS), len(categories), mass_axis.size)
        return passed[keep], np.ravel_multi_index((region_idx[keep], category_idx[keep], mass_idx[keep]), shape)

    def fill_histogram(self, h: hist.Hist, index: tuple[np.ndarray, np.ndarray], w: np.ndarray,
                       systematic: str) -> None:
        """Add exact per-bin sums of w and w^2 (bincount) of the indexed events to h's systematic slice."""
        rows, flat = index
        values, variances = _weighted_counts(flat, w[rows], (len(REGIONS), h.axes["category"].size, h.axes["mgg"].size))
        sy = h.axes["systematic"].index(systematic)
        view = h.view()
        view["value"][0, :, :, sy, :] += values
        view["variance"][0, :, :, sy, :] += variances

    def cutflow(self, s: Selection, w: np.ndarray) -> dict[str, dict[str, float]]:
        """Events and (raw, quantised) weighted sums after each step."""
        return {step: {"events": int(np.count_nonzero(mask)), "weighted": float(w[mask].sum())}
                for step, mask in s.steps.items()}

    def dump(self, info: ChunkInfo, events: ak.Array, s: Selection, w: np.ndarray, event_number: np.ndarray,
             variation: Variation) -> None:
        """Write this chunk's selected events to a parquet file named after the chunk (with each weight variation)."""
        from ttH_adv.dump import write_chunk

        factors = {v.name: 1.0 if info.is_data else np.broadcast_to(v.weight_factor(events, s), s.passed.shape)[s.passed]
                   for v in self.variations if v.is_weight}  # data are never varied
        write_chunk(self.dump_dir, info, s, w[s.passed], event_number[s.passed], variation.name, factors,
                    self.provenance)

    def postprocess(self, accumulator: dict) -> dict:
        """Nothing to do per run here: normalisation needs the manifest (processors.run)."""
        return accumulator


def _weighted_counts(flat: np.ndarray, weights: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin sums of w and of w^2 (quantised, so every sum is exact) of entries at flat bins of ``shape``."""
    size = int(np.prod(shape))
    return (np.bincount(flat, weights=weights, minlength=size).reshape(shape),
            np.bincount(flat, weights=quantise(weights**2), minlength=size).reshape(shape))


def _index_in(labels: np.ndarray, names: list[str]) -> np.ndarray:
    """Position of each label in ``names`` (-1 where absent), without a loop over events."""
    index = np.full(len(labels), -1, dtype=np.int64)
    for i, name in enumerate(names):  # a few names: one comparison each beats sorting the labels
        index[labels == name] = i
    return index
