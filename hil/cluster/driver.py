"""The driver of ``hil run``: start or join the cluster, deploy the nodes, train and evaluate through them.

Cluster modes (``--cluster``):

- ``none``: every :class:`hil.cluster.node.NodeActor` is an object in this process (debugging, and the
  reference the other modes must equal bit for bit).
- ``local``: a private Ray instance on 127.0.0.1 (really: see [Note: Ray and 127.0.0.1] in
  :mod:`hil.cluster.raylet`) advertising ``hil_node:<name>`` for every bench node;
  each node is an actor in its own worker process.
- any other value: the address of a running Ray cluster (``ray start --head ...``) whose hosts
  advertise the ``hil_node:<name>`` resources of the bench's nodes.

[Note: pipelined steps]
One training step of ``M`` micro-batches submits, in this order: the edge's forward of every
micro-batch, the server's forward-and-backward of every micro-batch (each waits for its symbols),
the edge's backward of every micro-batch (each waits for its gradient); with more stages
(:func:`hil.cluster.run.train_chain`) every stage's forward in chain order, the last stage's
forward-and-backward, then every stage's backward in reverse order. Each node's optimiser step
runs at the end of its last call of the step (no call of its own: every call is a round trip, about
1 ms), and the driver waits once per node. Ray runs each actor's calls in submission order, so while the server works on
micro-batch ``j`` the edge already computes ``j + 1`` (GPipe fill and drain); in ``none`` the same
calls run one after the other in the same order, which is why the two give the same numbers. The
symbols and gradients go from node to node as Ray object references: the driver never touches them.
Over a link split between two nodes (``zmq``, [Note: where the air is] in hil.cluster.node) the
receiver is armed before each micro-batch's forward on the transmitter (by itself after the previous
burst of the same size, otherwise by an ``arm`` call the transmitter's forward waits on), and the
micro-batches go through the chain one after the other (the air carries one burst at a time).
Each micro-batch's loss is weighted by its share of the batch, so the accumulated gradient is that of
the batch (exactly so for layers without batch statistics; batch normalisation and the transmitter's
power normalisation see each micro-batch on its own, as in GPipe).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any


from hil.cluster.node import NodeActor
from hil.errors import ConfigError, NodeError

log = logging.getLogger(__name__)

#: the bench of a training config: the transmitter and the receiver of its over-the-air cut
BENCH = (("edge", "edge"), ("server", "server"))  # (node name, role)
#: seconds :meth:`Cluster.close` waits for the nodes to close their radios before it ends their actors
CLOSE_WAIT_S = 5.0
#: seconds between two looks of :meth:`Cluster.get_all` at calls that have not ended
POLL_S = 0.25


def resource_name(node: str) -> str:
    """The custom Ray resource a host advertises to run bench node ``node``."""
    return f"hil_node:{node}"


@dataclass
class _Done:
    """The result of a call in ``none`` mode (stands where a Ray ObjectRef would)."""

    value: Any


@dataclass
class NodeHandle:
    """A deployed node: its name, role, where it runs (filled by :meth:`Cluster.deploy`) and its object or actor."""

    name: str
    role: str
    target: Any
    remote: bool
    info: dict = field(default_factory=dict)
    #: on the receiving end of a split link: the size (vectors) of the forward burst it is armed for, as far as
    #: the driver knows (it re-arms itself for the same size after each burst; [Note: where the air is] in
    #: hil.cluster.node)
    armed: int | None = None

    def call(self, method: str, *args: Any, num_returns: int = 1) -> Any:
        if not self.remote:
            args = tuple(a.value if isinstance(a, _Done) else a for a in args)
            out = getattr(self.target, method)(*args)
            return _Done(out) if num_returns == 1 else [_Done(v) for v in out]
        m = getattr(self.target, method)
        if num_returns != 1:
            m = m.options(num_returns=num_returns)
        return m.remote(*args)


class Cluster:
    """Start or join a cluster (see the module docstring) and run :class:`NodeActor` objects on it.

    Args:
        mode: ``"none"``, ``"local"`` or a Ray address (``"127.0.0.1:6379"``, ``"ray://..."``).
        nodes: the bench's node names (``local`` advertises one ``hil_node:<name>`` for each).
        num_cpus: CPUs of the private instance (``local``).
        resources: node name -> the Ray resources that pin its actor (default ``{hil_node:<name>: 1}``);
            ``local`` advertises them.
        hosts: node name -> the IP address of the Ray node that must run it (a joined cluster only: a
            private instance runs every node on this machine).

    Use as a context manager: the private instance is shut down on exit (only one this object started;
    a joined cluster is only disconnected from).
    """

    def __init__(self, mode: str = "local", nodes: tuple[str, ...] = ("edge", "server"), num_cpus: int = 2,
                 resources: dict[str, dict[str, float]] | None = None, hosts: dict[str, str] | None = None):
        if not isinstance(mode, str) or not mode:
            raise ValueError(f"cluster mode must be 'none', 'local' or a Ray address, got {mode!r}")
        self.mode = mode
        self.nodes = tuple(nodes)
        self.num_cpus = int(num_cpus)
        self.address: str | None = None
        self._started = False
        self.handles: dict[str, NodeHandle] = {}
        self.resources = {n: dict((resources or {}).get(n) or {resource_name(n): 1.0}) for n in self.nodes}
        self.hosts = dict(hosts or {})

    @property
    def remote(self) -> bool:
        return self.mode != "none"

    def __enter__(self) -> "Cluster":
        if not self.remote:
            return self
        import ray

        from hil.cluster.raylet import LOOPBACK, keep_loopback

        os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
        if self.mode != "local":
            _check_reachable(self.mode)
        if self.mode == "local" or self.mode.split("://")[-1].startswith(LOOPBACK + ":"):
            keep_loopback()  # [Note: Ray and 127.0.0.1] in hil/cluster/raylet.py
        if ray.is_initialized():
            self.address = ray.get_runtime_context().gcs_address
            return self
        # the workers import this tree's hil (the driver's sys.path, e.g. PYTHONPATH)
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH", ""),) if p)}}
        if self.mode == "local":
            advertised = {k: v for r in self.resources.values() for k, v in r.items()}
            ctx = ray.init(address="local", num_cpus=self.num_cpus, resources=advertised,
                           include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
                           runtime_env=env if env["env_vars"]["PYTHONPATH"] else None)
        else:
            try:
                ctx = ray.init(address=self.mode, log_to_driver=False,
                               runtime_env=env if env["env_vars"]["PYTHONPATH"] else None)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise ConfigError(f"--cluster {self.mode}: cannot join that Ray cluster ({e}); start it with "
                                  "`ray start --head --resources '{\"hil_node:edge\": 1}'` or use --cluster local") from e
        self._started = True
        self.address = ctx.address_info.get("gcs_address") or ctx.address_info.get("address")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close every node's radios (at most :data:`CLOSE_WAIT_S` in all: a node still waiting for a burst that a
        failed node will not send is not waited for), then end the actors."""
        closing = []
        for h in list(self.handles.values()):
            try:
                closing.append((h, h.call("close")))
            except Exception:  # noqa: BLE001 - a dead node has nothing left to close
                log.debug("closing node %s", h.name, exc_info=True)
        deadline = time.monotonic() + CLOSE_WAIT_S
        for h, ref in closing:
            try:
                self.get(h, ref, timeout_s=max(deadline - time.monotonic(), 0.01) if h.remote else None)
            except Exception:  # noqa: BLE001 - a dead or stuck node has nothing left to close
                log.debug("closing node %s", h.name, exc_info=True)
        for h in list(self.handles.values()):
            if h.remote:
                import ray

                ray.kill(h.target)
        self.handles = {}
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    # -- nodes ----------------------------------------------------------------------------
    def spawn(self, name: str, role: str, *args: Any, actor: type = NodeActor) -> NodeHandle:
        """Create node ``name`` (on the host advertising ``hil_node:<name>``) as ``actor(name, role, *args)``
        (default :class:`NodeActor`; :mod:`hil.cluster.nas` deploys a plan's stages with its own class)."""
        return self.spawn_actor(name, actor, name, role, *args, role=role)

    def spawn_actor(self, name: str, cls: type, *args: Any, role: str | None = None) -> NodeHandle:
        """Create ``cls(*args)`` for node ``name``: in this process (``none``) or as a Ray actor pinned to the
        host that advertises ``hil_node:<name>`` (or the node's own resources/host). ``cls`` needs ``info()``
        and ``close()`` (see :meth:`deploy`, :meth:`close`); the handle's role defaults to the class name."""
        role = role or cls.__name__
        if not self.remote:
            try:
                target = cls(*args)
            except Exception as e:
                raise NodeError(f"node {name!r} could not be deployed: {type(e).__name__}: {e}") from e
            h = NodeHandle(name, role, target, False)
        else:
            import ray

            res = dict(self.resources.get(name) or {resource_name(name): 1.0})
            if name in self.hosts and self.mode != "local":  # Ray's own resource of that host's node
                res[f"node:{self.hosts[name]}"] = 0.001
            remote = ray.remote(cls).options(resources=res, num_cpus=0, max_restarts=0, name=None)
            h = NodeHandle(name, role, remote.remote(*args), True)
        self.handles[name] = h
        return h

    def deploy(self) -> list[dict]:
        """Wait until every spawned node is up; returns their ``info()``. Raises NodeError naming the node."""
        infos = []
        for h in self.handles.values():
            h.info = self.get(h, h.call("info"), timeout_s=120.0)
            infos.append(h.info)
        return infos

    def _dead_node(self, e: Exception, default: NodeHandle) -> NodeHandle:
        """The node whose actor died: a call that waited on another node's result names that node."""
        dead = getattr(e, "actor_id", None)
        for h in self.handles.values():
            if h.remote and dead is not None and h.target._actor_id.hex() == dead:
                return h
        return default

    def get_all(self, calls: list[tuple[NodeHandle, Any]]) -> list:
        """The values of ``calls`` (``(node, call)`` pairs), in order. The first call to fail, in the order the
        calls end, raises NodeError as :meth:`get`: a node that waits for another node's burst does not hide
        the error of the node that did not send it."""
        if not any(h.remote for h, _ in calls):
            return [self.get(h, r) for h, r in calls]
        import ray

        index = {r: i for i, (_, r) in enumerate(calls)}
        out: list = [None] * len(calls)
        pending = [r for _, r in calls]
        while pending:  # all at once, looking at what has ended every POLL_S (a failed call has ended)
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_S)
            for r in ready:
                out[index[r]] = self.get(calls[index[r]][0], r)
        return out

    def get(self, h: NodeHandle, ref: Any, timeout_s: float | None = None) -> Any:
        """The value of ``ref`` (a call on node ``h``, or a list of them: their values); a dead or failed node
        raises NodeError in one line."""
        if not h.remote:
            if isinstance(ref, list):
                return [r.value if isinstance(r, _Done) else r for r in ref]
            return ref.value if isinstance(ref, _Done) else ref
        import ray
        from ray import exceptions as rx

        try:
            return ray.get(ref, timeout=timeout_s)
        except rx.RayActorError as e:
            h = self._dead_node(e, h)
            where = f"host {h.info.get('host', '?')}, pid {h.info.get('pid', '?')}" if h.info else "not yet placed"
            cause = "its actor died (process killed, host lost or out of memory)"
            if isinstance(e, rx.ActorDiedError) and getattr(e, "error_msg", ""):
                first = str(e.error_msg).strip().splitlines()[0]
                cause += f": {first[:200].rstrip('.')}"
            raise NodeError(f"node {h.name!r} ({where}) stopped: {cause}; rerun the same command to resume "
                            "from the last checkpoint") from e
        except rx.GetTimeoutError as e:
            raise NodeError(f"node {h.name!r}: no answer within {timeout_s:.0f} s; does a host advertise the "
                            f"resource {', '.join(self.resources.get(h.name) or [resource_name(h.name)])!r} "
                            "(ray status)?") from e
        except rx.RayTaskError as e:
            cause = e.cause if getattr(e, "cause", None) is not None else e
            raise NodeError(f"node {h.name!r} ({h.info.get('host', '?')}): {type(cause).__name__}: "
                            f"{str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}") from e


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """ConfigError unless something listens at ``address`` (``host:port``; ``ray://`` and ``auto`` are left
    to Ray). Ray itself retries a missing cluster for minutes before it gives up."""
    import socket

    if "://" in address or address == "auto":
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--cluster {address!r}: expected none, local or a Ray address HOST:PORT (the head's "
                          "`ray start --head --port PORT`)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ConfigError(f"--cluster {address}: nothing answers there ({e.strerror or e}); start the head with "
                          "`ray start --head --port PORT --resources '{\"hil_node:edge\": 1}'` on that host, or use "
                          "--cluster local") from e
