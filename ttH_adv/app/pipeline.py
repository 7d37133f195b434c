"""The end-to-end demo pipeline: stages that reuse their outputs when their inputs are unchanged.

Each stage declares its parameters and input files; a fingerprint of both (parameters plus each
input's size and modification time) is stored beside the stage's outputs in
``OUT/.stages/<stage>.json``.  A rerun skips a stage whose fingerprint matches and whose
outputs exist, so an interrupted demo continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_text

log = logging.getLogger(__name__)


@dataclass
class Stage:
    name: str
    params: dict[str, Any]
    inputs: list[Path]
    outputs: list[Path]
    run: Callable[[], None]


def _fingerprint(stage: Stage) -> str:
    items: list[Any] = [stage.params]
    for path in stage.inputs:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        items += [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.exists()]
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()


def run_stages(out: Path, stages: Iterable[Stage]) -> dict[str, str]:
    """Run stages in order, skipping the up-to-date ones; returns {stage: 'ran' | 'reused'}."""
    record_dir = out / ".stages"
    record_dir.mkdir(parents=True, exist_ok=True)
    status = {}
    stages = list(stages)
    for number, stage in enumerate(stages, 1):
        record = record_dir / f"{stage.name}.json"
        fingerprint = _fingerprint(stage)
        done = record.is_file() and json.loads(record.read_text()).get("fingerprint") == fingerprint
        if done and all(p.exists() for p in stage.outputs):
            log.info("stage %d/%d %s: up to date, reusing %s", number, len(stages), stage.name,
                     ", ".join(str(p) for p in stage.outputs))
            status[stage.name] = "reused"
            continue
        log.info("stage %d/%d %s: running", number, len(stages), stage.name)
        start = time.perf_counter()
        stage.run()
        seconds = time.perf_counter() - start
        write_text(record, json.dumps({"fingerprint": _fingerprint(stage), "seconds": seconds}) + "\n")
        log.info("stage %d/%d %s: done in %.1f s", number, len(stages), stage.name, seconds)
        status[stage.name] = "ran"
    return status
