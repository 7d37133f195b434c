"""Plain HTCondor batch: plan slices of chunks, write the submission, run a slice, merge partials.

``tth-adv condor submit`` checks every input file, cuts the files into chunks, spreads the
chunks over N slices and writes into the submit folder:

    plan.json            every slice's chunks, the options, the manifest path
    analysis.yaml        the effective analysis configuration
    model.onnx           the model, when one is scored
    slices.txt           one line per slice: its id (the submit file's queue)
    run_slice.sh         the job: `tth-adv condor job --plan plan.json --slice ID`
    job.sub              the HTCondor submit description (one job per slice)
    partials/            where each job's partial output lands

Each job writes an unnormalised partial output.  ``merge`` refuses, listing them, when a slice
is missing or a chunk appears twice or not at all, then adds the partials exactly and
normalises once, so the merged result equals a single run bit for bit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import yaml
from coffea import processor

from processors.run import preflight
from processors.tth import TthProcessor, chunk_id
from ttH_adv.atomic import write_text
from ttH_adv.config import PROCESSING, AnalysisConfig, config_hash, config_to_data, load_config
from ttH_adv.documents import read_document
from ttH_adv.errors import InputFileError, TthAdvError
from ttH_adv.inputs.manifest import Manifest, load_manifest
from ttH_adv.output import build_metadata, load_output, normalise, pop_bookkeeping, save_output

PLAN = "plan.json"


def read_plan(path: str | Path) -> dict:
    """A submit folder's plan.json; an ``InputFileError`` naming it where it is missing or not a plan."""
    plan = read_document(path, "a plan of tth-adv condor submit (written into its --out folder)",
                         error=InputFileError)
    if "slices" not in plan:
        raise InputFileError(f"{path} is not a plan of tth-adv condor submit (no slices)", path=str(path))
    return plan


def plan_slices(manifest: Manifest, config: AnalysisConfig, n_jobs: int, chunksize: int) -> list[list[dict]]:
    """Cut every file into chunks and spread them over at most n_jobs contiguous slices."""
    if n_jobs < 1:
        raise TthAdvError(f"--jobs must be at least 1, got {n_jobs}")
    checked = preflight(manifest, config, skip_bad_files=False)
    chunks = []
    for (dataset, path, tree), meta in sorted(checked.file_metadata.items()):
        n = meta["numentries"]
        edges = list(range(0, n, chunksize)) + [n]
        chunks += [{"dataset": dataset, "file": path, "tree": tree, "start": a, "stop": b}
                   for a, b in zip(edges[:-1], edges[1:], strict=True)]
    groups = np.array_split(np.arange(len(chunks)), min(n_jobs, max(len(chunks), 1)))
    return [[chunks[i] for i in group] for group in groups]


def _submit_description(config: AnalysisConfig, extra_inputs: list[str]) -> str:
    cluster = config.cluster
    lines = [
        "# HTCondor submit description written by `tth-adv condor submit`: one job per slice",
        "executable = run_slice.sh",
        "arguments = $(slice_id)",
        "transfer_input_files = " + ", ".join(["plan.json", "analysis.yaml", *extra_inputs]),
        "transfer_output_files = partials/partial_$(slice_id).zip",
        "should_transfer_files = YES",
        "when_to_transfer_output = ON_EXIT",
        f"output = {cluster.log_directory}/slice_$(slice_id).out",
        f"error = {cluster.log_directory}/slice_$(slice_id).err",
        f"log = {cluster.log_directory}/jobs.log",
        f"request_cpus = {cluster.cores}",
        f"request_memory = {cluster.memory}",
        f"request_disk = {cluster.disk}",
    ]
    if cluster.container_image:
        lines.append(f'+SingularityImage = "{cluster.container_image}"')
    if cluster.proxy:
        lines += [f"x509userproxy = {cluster.proxy}", "use_x509userproxy = true"]
    lines += [f"{k} = {v}" for k, v in cluster.job_extra_directives.items()]
    lines.append("queue slice_id from slices.txt")
    return "\n".join(lines) + "\n"


def _job_script(config: AnalysisConfig) -> str:
    setup = "\n".join(config.cluster.setup)
    return ("#!/bin/bash\n# One slice of the ttH(yy) processing (written by `tth-adv condor submit`).\nset -euo pipefail\n"
            f"{setup}\nmkdir -p partials\n"
            f"exec {config.cluster.python} -m ttH_adv.app.cli --no-progress condor job --plan plan.json --slice \"$1\" "
            "--out \"partials/partial_$1.zip\"\n")


def write_submission(manifest: Manifest | None, config: AnalysisConfig, out_dir: str | Path, n_jobs: int, *,
                     chunksize: int = PROCESSING.chunksize, systematics: str = PROCESSING.systematics, model: str | None = None,
                     only: list[int] | None = None, previous_plan: dict | None = None) -> Path:
    """Write the submit folder; returns the submit description's path.

    With ``previous_plan`` (resubmission) the plan is kept and only ``only``'s slices are queued.
    """
    out = Path(out_dir)
    slices = plan_slices(manifest, config, n_jobs, chunksize) if previous_plan is None else None  # checks first
    (out / "partials").mkdir(parents=True, exist_ok=True)
    (out / config.cluster.log_directory).mkdir(parents=True, exist_ok=True)
    if previous_plan is None:
        plan = {"manifest": str(manifest.path.resolve()), "n_slices": len(slices), "chunksize": chunksize,
                "systematics": systematics, "model": "model.onnx" if model else None,
                "config_hash": config_hash(config), "slices": slices}
        write_text(out / PLAN, json.dumps(plan, indent=1) + "\n")
        write_text(out / "analysis.yaml", yaml.safe_dump(config_to_data(config), sort_keys=False))
        if model:
            shutil.copy(model, out / "model.onnx")
    else:
        plan = previous_plan
    ids = range(plan["n_slices"]) if only is None else only
    write_text(out / "slices.txt", "".join(f"{i:04d}\n" for i in ids))
    script = out / "run_slice.sh"
    write_text(script, _job_script(config))
    script.chmod(0o755)
    submit = out / "job.sub"
    return write_text(submit, _submit_description(config, ["model.onnx"] if plan["model"] else []))


def submit(submit_file: Path) -> str:
    """Hand the description to condor_submit (needs an HTCondor pool)."""
    if shutil.which("condor_submit") is None:
        raise TthAdvError("condor_submit is not available here: use --dry-run and submit "
                          f"{submit_file} from a machine of the pool (condor/README.md)")
    result = subprocess.run(["condor_submit", submit_file.name], cwd=submit_file.parent, capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise TthAdvError(f"condor_submit failed: {result.stderr.strip()}")
    return result.stdout


def missing_slices(out_dir: str | Path) -> list[int]:
    """Slices without a partial output in the submit folder (to resubmit alone)."""
    out = Path(out_dir)
    plan = read_plan(out / PLAN)
    return [i for i in range(plan["n_slices"]) if not (out / "partials" / f"partial_{i:04d}.zip").is_file()]


def resubmit_missing(out_dir: Path, config: AnalysisConfig) -> tuple[Path | None, list[int]]:
    """A submission of only the slices without a partial output: (its submit file, the slices); (None, [])
    when every slice has its output."""
    todo = missing_slices(out_dir)
    if not todo:
        return None, []
    plan = read_plan(out_dir / PLAN)
    return write_submission(None, config, out_dir, plan["n_slices"], only=todo, previous_plan=plan), todo


def run_slice(plan_path: str | Path, slice_id: int, out: str | Path) -> Path:
    """Process one slice's chunks with the processor; save the unnormalised partial output."""
    from processors.run import dataset_formats
    from ttH_adv.inputs.objects import open_events

    plan_path = Path(plan_path)
    folder = plan_path.parent
    plan = read_plan(plan_path)
    if not 0 <= slice_id < plan["n_slices"]:
        raise TthAdvError(f"slice {slice_id} is not in {plan_path} (0..{plan['n_slices'] - 1})")
    config = load_config(folder / "analysis.yaml")
    manifest = load_manifest(plan["manifest"], check_files=False)
    model = str(folder / plan["model"]) if plan["model"] else None
    proc = TthProcessor(config, systematics=plan["systematics"], model_path=model)
    formats = dataset_formats(manifest, config, proc.variations)
    output = None
    for chunk in plan["slices"][slice_id]:
        label = formats[chunk["dataset"]]
        fmt = config.format(label)
        metadata = {**manifest.datasets[chunk["dataset"]].metadata(), "dataset": chunk["dataset"], "format": label}
        events = open_events(chunk["file"], fmt, metadata, tree=chunk["tree"], entry_start=chunk["start"],
                             entry_stop=chunk["stop"])
        part = proc.process(events)
        output = part if output is None else processor.accumulate([output, part])
    output = output or {"histograms": {}, "cutflow": {}, "events_read": {}, "chunks": {}, "objects": {}}
    output["slice"] = slice_id
    output["config_hash"] = plan["config_hash"]
    return save_output(output, out)


def batch_metadata(plan: dict, folder: Path, manifest: Manifest, bookkeeping: dict, partials: list[str]) -> dict:
    """The metadata of a merged batch output: the keys of a single run's (``OutputMetadata``), from the plan."""
    config = load_config(folder / "analysis.yaml")
    model = str(folder / plan["model"]) if plan["model"] else None
    chunks = [c for s in plan["slices"] for c in s]
    entries = {name: sum(c["stop"] - c["start"] for c in chunks if c["dataset"] == name) for name in manifest.datasets}
    scorer = TthProcessor(config, systematics=plan["systematics"], model_path=model).scorer
    if config_hash(config) != plan["config_hash"]:
        raise TthAdvError(f"{folder / 'analysis.yaml'} is not the configuration the plan was made with")
    return build_metadata(bookkeeping, config, manifest, scorer, entries_in_files=entries,
                          files_processed=sorted({c["file"] for c in chunks}), files_skipped=[],
                          files_without_systematic_branches=[], executor="condor-batch",
                          systematics=plan["systematics"], unblinded=False, wall_seconds=0.0,
                          slices=plan["n_slices"], merged_from=partials)


def merge_partials(plan_path: str | Path, partial_files: list[str | Path]) -> dict:
    """Merge partial outputs exactly; refuse a missing or duplicated slice or chunk."""
    plan = read_plan(plan_path)
    partials = [load_output(p) for p in partial_files]
    seen = [p["slice"] for p in partials]
    missing = sorted(set(range(plan["n_slices"])) - set(seen))
    duplicated = sorted({s for s in seen if seen.count(s) > 1})
    expected = {chunk_id(c["file"], c["start"], c["stop"]) for s in plan["slices"] for c in s}
    counts: dict[str, int] = {}
    for p in partials:
        for chunks in p["chunks"].values():
            for cid, n in chunks.items():
                counts[cid] = counts.get(cid, 0) + n
    twice = sorted(c for c, n in counts.items() if n > 1)
    absent = sorted(expected - set(counts)) if not missing else []
    problems = []
    if missing:
        problems.append(f"missing slice(s) {missing} (resubmit them: tth-adv condor submit --resubmit-missing)")
    if duplicated:
        problems.append(f"slice(s) {duplicated} given more than once")
    if twice:
        problems.append(f"chunk(s) processed twice: {twice[:5]}{' ...' if len(twice) > 5 else ''}")
    if absent:
        problems.append(f"chunk(s) never processed: {absent[:5]}")
    if any(p["config_hash"] != plan["config_hash"] for p in partials):
        problems.append("a partial was made with another configuration than the plan's")
    if problems:
        raise TthAdvError("refusing to merge: " + "; ".join(problems))
    fields = ("histograms", "cutflow", "events_read", "chunks", "objects")
    merged = processor.accumulate([{k: p[k] for k in fields} for p in partials])
    manifest = load_manifest(plan["manifest"], check_files=False)
    normalise(merged, manifest)
    merged["metadata"] = batch_metadata(plan, Path(plan_path).parent, manifest, pop_bookkeeping(merged),
                                        [str(p) for p in partial_files])
    return merged
