"""Running the processor: file checks, executors, coffea's Runner; the output handled by ``ttH_adv.output``.

An output (saved by ``ttH_adv.output.save_output`` as one zip, no pickle) is a dict with:

* ``histograms["mgg"]`` -- ``hist.Hist`` of m_yy with axes dataset, region, category,
  systematic, mgg and ``Weight()`` storage, MC normalised to luminosity x cross-section;
  ``histograms["mgg_control"]`` -- the same for the template control selections (nominal);
  ``histograms["mgg_inclusive"]`` -- every selected diphoton event in one category (nominal), the
  base of the background templates, shared by every model of a run;
  ``histograms["probabilities"]`` -- a multi-class model's class probabilities per dataset, region,
  category and class (nominal);
  a run that scores several models (``RunOptions.scorings``) holds ``mgg@<label>``,
  ``mgg_control@<label>`` (and ``probabilities@<label>``) per model, which
  ``ttH_adv.output.split_by_scoring`` turns into one output each;
* ``cutflow[dataset][step]`` -- ``{"events", "weighted"}`` after each step of
  ``processors.tth.cutflow_steps`` (weighted sums normalised like the histograms);
* ``metadata`` -- ``ttH_adv.output.OutputMetadata``: the configuration, roles, luminosity,
  events read, files processed and skipped, executor, systematics, model, version, wall time.

Outputs of separate runs merge with ``ttH_adv.output.merge_outputs`` (``tth-adv merge --outputs``).
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from coffea import processor
from coffea.util import coffea_console

from ttH_adv.config import EXECUTORS, PROCESSING, AnalysisConfig
from ttH_adv.errors import InputFileError, ProcessingError, TthAdvError
from ttH_adv.event.systematics import Variation
from ttH_adv.inputs import objects as obj
from ttH_adv.inputs.manifest import Manifest
from ttH_adv.inputs.objects import required_branches
from ttH_adv.inputs.schema import FileCheck, branch_map_dict, check_file
from ttH_adv.output import (
    build_metadata,
    categories_metadata,
    model_metadata,
    normalise,
    pop_bookkeeping,
)

from .tth import Scoring, TthProcessor
from .workers import DEFAULT_WORKER_START, WORKER_STARTS, start_fork_server

log = logging.getLogger(__name__)

# No uproot array cache: coffea keeps the chunk's buffers itself, and uproot's per-file cache
# sits in a reference cycle (file <-> directory <-> tree) that outlives the closed file until
# Python's rare full collection, so every chunk's decompressed arrays (~20 MB) piled up in the
# workers' memory (bench/scale_run.py).
UPROOT_OPTIONS = {"array_cache": None}


@dataclass
class RunOptions:
    executor: str = PROCESSING.executor
    workers: int = PROCESSING.workers
    chunksize: int = PROCESSING.chunksize
    maxchunks: int | None = None
    scheduler: str | None = None
    systematics: str = PROCESSING.systematics
    varied_roles: tuple[str, ...] | None = None  # the roles whose MC runs the variations (None: every MC dataset)
    dump_dir: str | None = None
    unblind: bool = False
    skip_bad_files: bool = False
    model_path: str | None = None
    scorings: tuple[Scoring, ...] = ()  # several models in one pass, each with its categories (a comparison)
    progress: bool = True
    retries: int = 0
    align_clusters: bool = True  # chunk edges on basket boundaries: no basket is decompressed twice
    client: Any = None  # an existing dask.distributed Client (the caller owns and closes it)
    worker_start: str = DEFAULT_WORKER_START  # how a LocalCluster starts its worker processes


@dataclass
class Preflight:
    fileset: dict[str, dict] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    entries: dict[str, int] = field(default_factory=dict)
    file_metadata: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    without_optional: list[str] = field(default_factory=list)  # files lacking the object-systematic branches

    def metadata_cache(self) -> dict:
        """coffea's per-file metadata (entries, UUID), so the Runner need not reopen each file."""
        return {processor.executor.FileMeta(*key): meta for key, meta in self.file_metadata.items()}


def preflight(manifest: Manifest, config: AnalysisConfig, skip_bad_files: bool,
              processor_instance: TthProcessor | None = None, mapper: Callable = map) -> Preflight:
    """Check every file before processing; drop (and record) bad ones only if asked to.

    ``mapper`` runs the per-file checks (``map``: here, one after the other; ``cluster_map``: on
    the Dask workers, where parsing a hundred TTree headers takes a second in one process).
    With a processor, each dataset's entry names the branches it reads (coffea's ``preload``),
    so each chunk reads them in one call rather than one at a time.
    """
    result = Preflight()
    labels = dataset_formats(manifest, config, processor_instance.variations if processor_instance else ())
    formats = {name: config.format(label) for name, label in labels.items()}
    optional = {name: tuple(fmt.branches.optional_branches()) for name, fmt in formats.items()}
    read = {name: processor_instance.branches_read(formats[name], d.is_data) if processor_instance else []
            for name, d in manifest.datasets.items()}
    # Required: the format's branches and what will be read (the shifts only with object systematics).
    required = {name: tuple(dict.fromkeys([*required_branches(formats[name], d.is_data), *read[name]]))
                for name, d in manifest.datasets.items()}
    trees = {name: {path: tree or formats[name].branches.tree for path, tree in d.files.items()}
             for name, d in manifest.datasets.items()}
    jobs = [(path, tree, required[name], name, optional[name]) for name in manifest.datasets
            for path, tree in trees[name].items()]
    checks = iter(mapper(_check_or_error, jobs))
    for name, dataset in manifest.datasets.items():
        files = {}
        result.entries[name] = 0
        metadata = {**dataset.metadata(), "format": labels[name], "branch_map": branch_map_dict(formats[name].branches)}
        for path, tree in trees[name].items():
            checked = next(checks)
            if isinstance(checked, InputFileError):
                if not skip_bad_files:
                    raise checked
                log.warning("skipping bad file: %s", checked)
                result.skipped.append({"dataset": name, "file": path, "reason": str(checked)})
                continue
            result.entries[name] += checked.entries
            if checked.missing_optional:
                result.without_optional.append(path)
            if checked.entries:
                files[path] = tree
                result.file_metadata[(name, path, tree)] = {**metadata, "numentries": checked.entries,
                                                            "uuid": checked.uuid, "clusters": list(checked.clusters)}
        if files:
            result.fileset[name] = {"files": files, "metadata": metadata}
            if processor_instance is not None:
                result.fileset[name]["preload"] = read[name]
    if result.without_optional:
        log.info("%d file(s) lack the object-systematic branches (%s), e.g. %s: nominal only (--systematics all "
                 "needs them)", len(result.without_optional), ", ".join(sorted({b for o in optional.values() for b in o})),
                 result.without_optional[0])
    return result


def dataset_formats(manifest: Manifest, config: AnalysisConfig, variations: Iterable[Variation] = ()) -> dict[str, str]:
    """Each dataset's input format name (its manifest's ``format``, else the configuration's default), checked
    before any file is opened: the profile exists, and the object variations have the shifts to read."""
    formats = {}
    shift_fields = sorted({f for v in variations for f in v.object_fields})
    for name, dataset in manifest.datasets.items():
        label = dataset.format or config.default_format
        try:
            profile = config.format(label)
        except TthAdvError as exc:
            raise TthAdvError(f"dataset {name!r} of {manifest.path}: {exc}") from None
        lacking = [f for f in shift_fields if f not in profile.branches.optional_fields]
        if lacking and not dataset.is_data:
            raise TthAdvError(f"dataset {name!r}: its input format {label!r} has no object-systematic shifts "
                              f"({', '.join(lacking)}): run it with --systematics none or weights")
        formats[name] = label
    return formats


def by_reader(fileset: dict[str, dict], config: AnalysisConfig) -> dict[str, dict[str, dict]]:
    """The checked fileset split by the reader of each dataset's input format (in the registry's order)."""
    groups: dict[str, dict[str, dict]] = {}
    for name, entry in fileset.items():
        groups.setdefault(config.format(entry["metadata"]["format"]).reader, {})[name] = entry
    order = list(obj.READERS)
    return dict(sorted(groups.items(), key=lambda item: order.index(item[0])))


def first_tree(fileset: dict[str, dict]) -> str:
    """A tree name for coffea's Runner (every file of our filesets names its own)."""
    return next(iter(next(iter(fileset.values()))["files"].values()))


def _check_or_error(job: tuple) -> FileCheck | InputFileError:
    """One file's check; a bad file's error is returned (it travels back from a worker) rather than raised."""
    try:
        return check_file(*job)
    except InputFileError as exc:
        return exc


def cluster_map(client: Any) -> Callable:
    """A ``map`` that runs on the Dask workers (for the per-file checks)."""

    def mapper(function: Callable, jobs: list) -> list:
        return client.gather(client.map(function, jobs, pure=False))

    return mapper


WORK_ITEM_FIELDS = {key: re.compile(rf"{key}=('(?:[^'\\]|\\.)*'|\d+)") for key in
                    ("dataset", "filename", "entrystart", "entrystop")}


def failure_summary(exc: BaseException) -> str:
    """One line from a failed chunk: dataset, file, entry range and the root cause (not the whole work item)."""
    chain, cause = [], exc
    while cause is not None and len(chain) < 20:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(e) for e in chain)
    found = {key: m.group(1).strip("'") for key, pattern in WORK_ITEM_FIELDS.items() if (m := pattern.search(text))}
    root = chain[-1]
    # A process pool sends back only coffea's wrapper text, ending in "The error was: <cause>".
    wrapped = re.search(r"The error was: (.+?)\.?$", str(root), re.DOTALL)
    reason = wrapped.group(1) if wrapped else f"{type(root).__name__}: {str(root)}".rstrip(": ")
    reason = reason.splitlines()[0][:200] if reason else type(root).__name__
    as_repr = re.fullmatch(r"""(\w+)\((['"])(.*)\2\)""", reason)  # "error('...')" -> "error: ..."
    reason = f"{as_repr.group(1)}: {as_repr.group(3)}" if as_repr else reason
    if len(found) < 4:
        return reason
    return (f"dataset {found['dataset']!r}, file {found['filename']}, entries {found['entrystart']}-"
            f"{found['entrystop']}: {reason}")


def make_executor(options: RunOptions, client: Any = None) -> processor.ExecutorBase:
    """The coffea executor for the options (a Dask one runs on ``client``)."""
    if options.executor == "iterative":
        return processor.IterativeExecutor(status=options.progress, retries=options.retries)
    if options.executor == "futures":
        return processor.FuturesExecutor(workers=options.workers, status=options.progress, retries=options.retries)
    if options.executor == "dask":
        return processor.DaskExecutor(client=client, status=options.progress, retries=options.retries)
    raise TthAdvError(f"--executor must be one of {EXECUTORS}, got {options.executor!r}")


@contextmanager
def dask_session(options: RunOptions) -> Iterator[Any]:
    """The Dask client of a run (None without Dask); one this run started is closed with its LocalCluster."""
    if options.executor != "dask":
        yield None
        return
    # coffea's DaskExecutor imports dask.dataframe (~1 s, unused here): import it while the
    # cluster starts and the workers check the files, rather than after.
    threading.Thread(target=importlib.import_module, args=("dask.dataframe",), daemon=True).start()
    if options.client is not None:
        yield options.client
        return
    client = dask_client(options)
    try:
        yield client
    finally:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None and not options.scheduler:
            cluster.close()


def dask_client(options: RunOptions):
    """A Dask client: the given scheduler, else a LocalCluster of one-thread workers."""
    from distributed import Client

    if options.scheduler:
        return Client(options.scheduler)
    return Client(local_cluster(options.workers, options.worker_start))


def local_cluster(workers: int, start: str = DEFAULT_WORKER_START):
    """A LocalCluster of one-thread worker processes, started by ``start``, with glibc's own memory trimming.

    ``forkserver`` (Linux's default here; ``processors.workers``): the first cluster of a process
    starts a fork server that imports distributed and the processor once (~1.2 s, like
    ``spawn``); every worker is then forked from it in milliseconds, later clusters of the same
    process included, and exits without tearing down an interpreter (a LocalCluster of 2
    closes in ~0.03 s, not ~0.35 s).

    Dask's nannies set ``MALLOC_TRIM_THRESHOLD_=65536`` for their workers; that fixes glibc's
    mmap threshold too, so every large numpy temporary becomes a fresh mmap with page faults,
    and the processor ran ~20% slower per chunk than in a plain process.  Without it the
    workers match the iterative executor chunk for chunk (bench/processor_throughput.py), and
    their memory stays flat with the input size (``UPROOT_OPTIONS``; bench/scale_run.py).
    """
    import dask
    from distributed import LocalCluster

    if start not in WORKER_STARTS:
        raise TthAdvError(f"--worker-start must be one of {WORKER_STARTS}, got {start!r}")
    if start == "forkserver":
        start_fork_server()
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                          "distributed.worker.multiprocessing-method": start}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)


@contextmanager
def progress_bars(show: bool) -> Iterator[None]:
    """Show or hide coffea's progress bars (its executors draw them whatever ``status`` says)."""
    quiet = coffea_console.quiet
    coffea_console.quiet = quiet or not show
    try:
        yield
    finally:
        coffea_console.quiet = quiet


def empty_output(processor_instance: TthProcessor, manifest: Manifest) -> dict:
    """A valid output with zero-filled histograms for every dataset (nothing processed)."""
    out = None
    for name in manifest.datasets:
        part = processor_instance.empty_output(name)
        part["cutflow"][name] = {step: {"events": 0, "weighted": 0.0} for step in processor_instance.cutflow_steps()}
        out = part if out is None else processor.accumulate([out, part])
    return out


def run_analysis(manifest: Manifest, config: AnalysisConfig, options: RunOptions,
                 processor_instance: TthProcessor | None = None) -> dict:
    """Run the processor over a manifest and return the normalised output with metadata."""
    start = time.perf_counter()
    proc = processor_instance or TthProcessor(config, systematics=options.systematics, dump_dir=options.dump_dir,
                                              unblind=options.unblind, model_path=options.model_path,
                                              scorings=options.scorings, varied_roles=options.varied_roles)
    with dask_session(options) as client:
        mapper = cluster_map(client) if client else map
        checked = preflight(manifest, config, options.skip_bad_files, proc, mapper)
        output = empty_output(proc, manifest)
        for name, fileset in by_reader(checked.fileset, config).items():
            # coffea's Runner reads one schema: one run per reader (flat ntuples, PHYSLITE), outputs added
            executor, reader = make_executor(options, client), obj.reader_named(name)
            runner = processor.Runner(executor=executor, schema=reader.schema(), chunksize=options.chunksize,
                                      maxchunks=options.maxchunks, metadata_cache=checked.metadata_cache(),
                                      align_clusters=options.align_clusters)
            try:
                with progress_bars(options.progress):
                    result = runner(fileset, processor_instance=proc, treename=first_tree(fileset),
                                    uproot_options=UPROOT_OPTIONS, iteritems_options=reader.read_filter or {})
            except Exception as exc:  # coffea wraps the cause with the whole work item and branch map
                raise ProcessingError(f"processing stopped: {failure_summary(exc)}") from exc
            output = processor.accumulate([output, result])
    normalise(output, manifest)
    wall = time.perf_counter() - start
    processed = sorted(f for d in checked.fileset.values() for f in d["files"])
    output["metadata"] = build_metadata(
        pop_bookkeeping(output), config, manifest, proc.scorer, entries_in_files=checked.entries,
        varied_roles=list(options.varied_roles) if options.varied_roles is not None else None,
        files_processed=processed, files_skipped=checked.skipped,
        files_without_systematic_branches=checked.without_optional, executor=options.executor,
        systematics=options.systematics, unblinded=options.unblind, wall_seconds=wall,
        workers=options.workers, chunksize=options.chunksize, aligned_chunks=options.align_clusters,
        maxchunks=options.maxchunks, dump_dir=options.dump_dir,
        scorings={label: {"model": model_metadata(proc.scorers[label], manifest),
                          "categories": categories_metadata(scoring.categories)}
                  for label, scoring in proc.scorings.items()} if options.scorings else {})
    return output


