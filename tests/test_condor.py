"""HTCondor and Dask scale-out: submit descriptions, job scripts, slices, merging, lost workers."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time

import cloudpickle
import numpy as np
import pytest

from condor.batch import PLAN, merge_partials, missing_slices, run_slice, write_submission
from condor.cluster import job_script, ship_model
from processors.tth import TthProcessor
from ttH_adv.errors import TthAdvError

from conftest import histogram_by_dataset, run

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module


def _same(a, b):
    ha, hb = histogram_by_dataset(a), histogram_by_dataset(b)
    assert ha.keys() == hb.keys()
    for name in ha:
        assert np.array_equal(ha[name][0], hb[name][0]) and np.array_equal(ha[name][1], hb[name][1]), name
    assert a["cutflow"] == b["cutflow"]


@pytest.fixture(scope="module")
def submission(small_manifest, config, tmp_path_factory):
    folder = tmp_path_factory.mktemp("submit")
    path = write_submission(small_manifest, config, folder, n_jobs=5, chunksize=2_500)
    return folder, path


def test_submit_description_parses_and_expands_to_one_job_per_slice(submission, monkeypatch):
    htcondor = pytest.importorskip("htcondor2")
    folder, path = submission
    description = htcondor.Submit(path.read_text())
    monkeypatch.chdir(folder)  # the queue statement reads slices.txt relative to the submit folder
    items = list(description.itemdata())
    assert [int(i["slice_id"]) for i in items] == list(range(5))
    assert description["executable"] == "run_slice.sh" and description["arguments"] == "$(slice_id)"
    assert {f.strip() for f in description["transfer_input_files"].split(",")} == {"plan.json", "analysis.yaml"}
    assert description["request_memory"] == "4GB"
    script = (folder / "run_slice.sh").read_text()
    assert "condor job --plan plan.json --slice \"$1\"" in script and os.access(folder / "run_slice.sh", os.X_OK)


def test_slices_merge_to_exactly_one_single_run(submission, small_manifest, config):
    folder, _ = submission
    partials = [run_slice(folder / PLAN, i, folder / "partials" / f"partial_{i:04d}.zip") for i in range(5)]
    assert missing_slices(folder) == []
    _same(merge_partials(folder / PLAN, partials), run(small_manifest, config))


def test_missing_or_duplicated_slices_are_refused(submission, config):
    folder, _ = submission
    partials = sorted((folder / "partials").glob("partial_*.zip"))
    if len(partials) < 5:  # the previous test writes them; make them if run alone
        partials = [run_slice(folder / PLAN, i, folder / "partials" / f"partial_{i:04d}.zip") for i in range(5)]
    with pytest.raises(TthAdvError, match=r"missing slice\(s\) \[2\]"):
        merge_partials(folder / PLAN, [p for p in partials if not p.name.endswith("0002.zip")])
    with pytest.raises(TthAdvError, match=r"slice\(s\) \[1\] given more than once.*processed twice"):
        merge_partials(folder / PLAN, [*partials, partials[1]])
    # A lost slice is resubmitted alone.
    moved = partials[3].rename(partials[3].with_suffix(".lost"))
    assert missing_slices(folder) == [3]
    import json

    write_submission(None, config, folder, 5, only=[3], previous_plan=json.loads((folder / PLAN).read_text()))
    assert (folder / "slices.txt").read_text() == "0003\n"
    moved.rename(partials[3])


def test_jobqueue_worker_command_joins_a_real_scheduler(small_manifest, config, tmp_path):
    pytest.importorskip("dask_jobqueue")
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=0, dashboard_address=None) as scheduler, Client(scheduler) as client:
        script = job_script(config.cluster, scheduler.scheduler_address)
        arguments = next(line for line in script.splitlines() if line.startswith("Arguments"))
        command = arguments.split("-c '", 1)[1].rsplit("'", 1)[0]
        assert scheduler.scheduler_address in command and "--nthreads 1" in command
        argv = shlex.split(command)
        argv[0] = sys.executable  # the job's python, here
        worker = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client.wait_for_workers(1, timeout=60)
            through_condor_worker = run(small_manifest, config, executor="dask", client=client, chunksize=5_000)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    _same(through_condor_worker, run(small_manifest, config))


def test_model_is_shipped_to_workers_and_loaded_there(small_manifest, config, tmp_path):
    pytest.importorskip("tensorflow")
    from distributed import Client, LocalCluster

    from training.config import load_training_config
    from training.run import run_training

    run(small_manifest, config, dump_dir=str(tmp_path / "dump"))
    cfg = load_training_config(overrides={"classifier": {"layers": [8]}, "schedule": {"epochs": 1},
                                          "data": {"min_jets": 2}})
    run_training(tmp_path / "dump", tmp_path / "model", cfg, [("classifier", 0.0)], config)
    private = tmp_path / "private" / "model.onnx"
    private.parent.mkdir()
    shutil.copy(tmp_path / "model" / "model.onnx", private)
    reference = run(small_manifest, config, model_path=str(private))
    processor = TthProcessor(config, model_path=str(private))  # checks the model here, on the client
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        ship_model(client, private)
        private.unlink()  # the workers can only use the uploaded copy now
        from processors.run import RunOptions, run_analysis

        shipped = run_analysis(small_manifest, config, RunOptions(executor="dask", client=client, progress=False,
                                                                  model_path=None), processor_instance=processor)
    _same(shipped, reference)


FIRST_CHUNK = "ttH-adv-test-first-chunk-done"


class SlowProcessor(TthProcessor):
    """Slow enough that chunks are still in flight when the first one finishes; announces that moment."""

    def process(self, events):
        time.sleep(0.15)
        output = super().process(events)
        from distributed import Event

        Event(FIRST_CHUNK).set()  # a worker-side signal the test's killer waits for
        return output


def _kill_a_busy_worker_after_the_first_chunk(client, killed: dict) -> None:
    """Wait for the first finished chunk, kill a worker that is processing one, wait until it has left."""
    from distributed import Event

    if not Event(FIRST_CHUNK, client=client).wait(timeout=120):
        return
    busy = [w for w, keys in client.processing().items() if keys]
    if not busy:
        return
    killed["worker"] = busy[0]
    with contextlib.suppress(Exception):  # the connection drops with the worker: expected
        client.run(os._exit, 1, workers=[busy[0]])
    deadline = time.monotonic() + 30
    while busy[0] in client.scheduler_info()["workers"] and time.monotonic() < deadline:
        time.sleep(0.05)
    killed["left"] = busy[0] not in client.scheduler_info()["workers"]


def _run_while_killing(small_manifest, config, retries: int, allowed_failures: int):
    import dask
    from distributed import Client, LocalCluster

    from processors.run import RunOptions, run_analysis

    killed: dict = {}
    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}), \
            LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        killer = threading.Thread(target=_kill_a_busy_worker_after_the_first_chunk, args=(client, killed))
        killer.start()
        try:
            options = RunOptions(executor="dask", client=client, chunksize=600, retries=retries, progress=False)
            return run_analysis(small_manifest, config, options, processor_instance=SlowProcessor(config)), killed
        finally:
            killer.join()


def test_a_worker_killed_mid_run_leaves_and_the_result_is_identical(small_manifest, config):
    reference = run(small_manifest, config)
    result, killed = _run_while_killing(small_manifest, config, retries=3, allowed_failures=3)
    assert killed.get("left"), f"a busy worker must be killed after the first chunk and leave the scheduler: {killed}"
    _same(result, reference)


def test_a_worker_killed_without_retries_fails_the_run_naming_the_file(small_manifest, config):
    from ttH_adv.errors import ProcessingError

    with pytest.raises(ProcessingError, match=r"processing stopped: dataset '\w+', file [^,]+\.root, entries \d+-\d+: KilledWorker"):
        _run_while_killing(small_manifest, config, retries=0, allowed_failures=0)


def test_cluster_condor_without_htcondor_says_so_in_one_line(small_manifest, tmp_path, monkeypatch, caplog):
    """No condor_submit on the machine: one clear line and exit code 2, no traceback."""
    from ttH_adv.app.cli import main

    from helpers import write_manifest

    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to find there
    path = write_manifest(small_manifest, tmp_path / "datasets.json")
    assert main(["--no-progress", "run", "--datasets", str(path), "--out", str(tmp_path / "o"),
                 "--cluster", "condor"]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "HTCondor is not installed here" in errors[0] and "\n" not in errors[0]
    assert "Traceback" not in caplog.text
