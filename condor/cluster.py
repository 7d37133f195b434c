"""Dask on HTCondor through dask-jobqueue, configured from the analysis configuration.

``htcondor_cluster(config)`` builds an ``HTCondorCluster`` with adaptive scaling between the
configured minimum and maximum of jobs; ``ship_model(client, path)`` uploads the ONNX model to
every worker (present and future), where ``ttH_adv.inference`` finds it by its hash and opens
it once per worker process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ttH_adv.config import ClusterConfig
from ttH_adv.errors import TthAdvError


def job_kwargs(cluster: ClusterConfig) -> dict[str, Any]:
    """dask-jobqueue HTCondorJob arguments from our cluster configuration."""
    extra = dict(cluster.job_extra_directives)
    if cluster.container_image:
        extra["+SingularityImage"] = f'"{cluster.container_image}"'
    if cluster.proxy:
        extra["x509userproxy"] = cluster.proxy
        extra["transfer_input_files"] = cluster.proxy
        extra["use_x509userproxy"] = "true"
    extra.setdefault("should_transfer_files", "YES")
    extra.setdefault("when_to_transfer_output", "ON_EXIT_OR_EVICT")
    return {
        "cores": cluster.cores,
        "processes": cluster.cores,  # one single-threaded worker process per core
        "memory": cluster.memory,
        "disk": cluster.disk,
        "job_extra_directives": extra,
        "job_script_prologue": list(cluster.setup),
        "python": cluster.python,
        "log_directory": cluster.log_directory,
    }


def htcondor_cluster(cluster: ClusterConfig, adaptive: bool = True, **overrides: Any):
    """An HTCondorCluster (adaptive between minimum_jobs and maximum_jobs)."""
    import shutil

    from dask_jobqueue import HTCondorCluster

    if shutil.which("condor_submit") is None:  # else dask-jobqueue fails later, in a thread, with a traceback
        raise TthAdvError("--cluster condor: HTCondor is not installed here (condor_submit not found); run on a "
                          "submit node, or use --cluster local, or `tth-adv condor submit --dry-run`")

    kwargs = job_kwargs(cluster) | overrides
    condor = HTCondorCluster(**kwargs)
    if adaptive:
        condor.adapt(minimum_jobs=cluster.minimum_jobs, maximum_jobs=cluster.maximum_jobs)
    return condor


def job_script(cluster: ClusterConfig, scheduler_address: str) -> str:
    """The job script dask-jobqueue would submit, with its worker command pointing at a scheduler."""
    from dask_jobqueue.htcondor import HTCondorJob

    return HTCondorJob(scheduler=scheduler_address, name="tth-adv-worker", **job_kwargs(cluster)).job_script()


def ship_model(client: Any, path: str | Path) -> None:
    """Upload the model file to every worker (and to workers that join later)."""
    from distributed.diagnostics.plugin import UploadFile

    client.register_plugin(UploadFile(str(path)))
