"""Independent trainings (seeds) fanned out over a Ray cluster: ``hil train --seeds N --cluster ...``.

[Note: seeds on a Ray cluster]
With a cluster (``"local"`` or a Ray address, as ``hil run --cluster``) every seed is one Ray task
with one CPU and one torch thread, instead of a local process pool: a cluster of several hosts runs
as many seeds at once as it has CPUs. A seed over a real board (``[ota] transport = "pluto"``) must
run on the host that has it: its task asks for the resource ``hil_node:edge`` (the bench's
transmitter, whose board ``[ota] uri`` names; one at a time); simulated transports run anywhere.
Each task writes its seed's folder on its own host, so the run folder must be shared between the
hosts (or be a path every host can write).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from hil.cluster.driver import Cluster, resource_name
from hil.errors import NodeError
from hil.train.config import RunConfig
from hil.train.seeds import run_one


def ray_runner(cluster: str) -> Callable[[list[tuple[RunConfig, Path]]], Iterator[tuple[int, dict]]]:
    """A ``runner`` for :func:`hil.train.seeds.run_seeds`: one Ray task per seed on ``cluster``."""

    def run(jobs: list[tuple[RunConfig, Path]]) -> Iterator[tuple[int, dict]]:
        with Cluster(cluster, ("edge", "server")):
            import ray
            from ray import exceptions as rx

            task = ray.remote(run_one)
            refs = {}
            for c, folder in jobs:
                res = {resource_name("edge"): 1} if c.ota.transport == "pluto" else {}
                refs[task.options(num_cpus=1, resources=res, max_retries=0).remote(c, str(folder), 1)] = c.train.seed
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                seed = refs[done[0]]
                try:
                    yield seed, ray.get(done[0])
                except rx.RayTaskError as e:
                    cause = e.cause if getattr(e, "cause", None) is not None else e
                    text = str(cause).strip().splitlines()
                    raise NodeError(f"seed {seed} on the cluster ({cluster}): {type(cause).__name__}: "
                                    f"{text[-1] if text else ''}") from e
                except rx.RayError as e:
                    raise NodeError(f"seed {seed} on the cluster ({cluster}): its worker was lost "
                                    f"({type(e).__name__}); rerun the same command: finished seeds resume from "
                                    "their folders") from e

    return run
