"""BAIM (the cloud-edge big model, :mod:`hil.baim`) on node actors: ``hil baim --cluster none|local|ADDRESS``,
and its life after deployment, ``hil baim-maintain --cluster ...`` (:class:`MaintainEdge`,
:class:`MaintainNodes`; see [Note: BAIM after deployment on node actors]).

[Note: BAIM on node actors]
The bench has one node per edge learner (``node0`` .. ``node<N-1>``, :class:`BaimEdge`) and a ``cloud``
node (:class:`BaimCloud`), each an actor pinned to the host advertising ``hil_node:<name>``
(:meth:`hil.cluster.driver.Cluster.spawn_actor`; ``none`` makes the same objects in this process).

- Data: every node rebuilds the digits split from ``cfg.seed`` (:func:`hil.baim.experiment.seeded_split`)
  and keeps its own part: an edge its shard and the test images of its own classes, the cloud its proxy
  set, the test set and only the *sizes* of the edges' shards (FedAvg weights by them). No image
  crosses a link.
- Edge training runs in the edge's actor; its weights stay there.
- Upload: for each cloud strategy the cloud asks each edge for its message (:func:`edge_upload`: the
  WireMessage bytes of :func:`hil.baim.wire.pack_state`) and times the call at the receiver
  (``perf_counter`` around the request until the bytes are in hand: one Ray round trip plus the
  transfer); ``n_bytes`` is ``len()`` of what arrived.
- The cloud assembles and trains the big model (:func:`hil.baim.experiment.cloud_strategy`), then puts
  each per-task model's bytes in its object store once; each edge of that task pulls them
  (``ray.get`` timed on the edge), rebuilds the model and evaluates it on its own test images (held-out
  negative ELBO). The exactness check runs the deployed models *on the edges* (:class:`OnNode`).
- FedAvg: the cloud actor runs :func:`hil.baim.fedavg.run_fedavg` with :class:`ActorClients`: each
  round every edge pulls the global weights from the cloud's object store and trains its own VAE
  (its Adam kept in the actor), and the cloud pulls the result back; all timed at the receiver.
- Randomness: one run has one torch generator and one torch global state (module initialisation)
  that every phase draws from in order. Each call that draws from them carries both states in
  (:func:`baton`) and returns them advanced; the caller continues from them. The phases run one after
  the other, as in one process, which is what makes ``none``, ``local`` and :func:`run_baim` without
  nodes give the same numbers bit for bit (the test). The price: the edges train one after the other,
  not in parallel (parallel edges need one generator per edge, which changes the single-process numbers).
- Threads: every node runs with the driver's torch thread count (float reductions may be split
  differently with another count).

Objects smaller than Ray's inline limit (100 KiB by default) travel inside the call's reply rather than
through the object store: the measured time is what Ray took either way. On a single host the links are
loopback sockets, so the seconds measure Ray's overhead, not a radio or a WAN.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hil.baim.config import BaimConfig
from hil.baim.deploy import unpack_task_model
from hil.baim.experiment import Evaluators, cloud_receive, cloud_strategy, edge_upload, seeded_split
from hil.baim.fedavg import FedAvgResult, LocalClients, run_fedavg
from hil.baim.learners import LearnerSpec, VaeLearner, train_vae
from hil.baim.maintain import nelbo
from hil.baim.wire import TrafficMeter, pack_state, unpack_state
from hil.cluster.driver import Cluster, NodeHandle
from hil.cluster.node import node_location

log = logging.getLogger(__name__)

CLOUD = "cloud"


def node_names(n_nodes: int) -> tuple[str, ...]:
    """The bench of a BAIM run: ``node0`` .. ``node<n-1>`` (edges) and ``cloud``."""
    return (*(f"node{n}" for n in range(n_nodes)), CLOUD)


def baton(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's random state: (torch global state, ``gen``'s state) (see [Note: BAIM on node actors])."""
    return torch.get_rng_state(), gen.get_state()


def restore(state: tuple[torch.Tensor, torch.Tensor], gen: torch.Generator) -> None:
    """Continue from a :func:`baton` another node returned."""
    torch.set_rng_state(state[0])
    gen.set_state(state[1])


def _config(cfg: dict) -> BaimConfig:
    from hil._io import from_section

    return from_section(BaimConfig, cfg, "baim")


def _value(h: NodeHandle, ref: Any) -> Any:
    """The value of a call on ``h`` (inside a node: no driver to translate errors; they propagate to it)."""
    if not h.remote:
        return ref.value
    import ray

    return ray.get(ref)


def _put(remote: bool, blob: bytes) -> list:
    """``blob`` for other nodes to pull: its object reference in a list (Ray does not resolve a reference
    inside a list, so the receiver's ``ray.get`` is the transfer it times); in-process the bytes themselves."""
    if not remote:
        return [blob]
    import ray

    return [ray.put(blob)]


def _pull(box: list) -> tuple[bytes, float]:
    """The bytes :func:`_put` boxed, and the seconds it took to get them."""
    t0 = time.perf_counter()
    item = box[0]
    if not isinstance(item, (bytes, bytearray)):
        import ray

        item = ray.get(item)
    return bytes(item), time.perf_counter() - t0


class BaimEdge:
    """Edge node ``index``: trains its learner on its shard, uploads it on request, receives and runs the
    per-task model of its task, and is a FedAvg client. See [Note: BAIM on node actors]."""

    def __init__(self, name: str, index: int, cfg: dict, threads: int = 1):
        torch.set_num_threads(int(threads))
        self.name, self.index = name, int(index)
        self.cfg = _config(cfg)
        _, _, _, data = seeded_split(self.cfg)
        self.x = data.x_nodes[self.index]
        self.classes = list(data.node_classes[self.index])
        self.task = int(data.node_task[self.index])
        self.x_local_test = data.x_test[torch.isin(data.y_test, torch.tensor(self.classes))]
        self.spec: LearnerSpec | None = None
        self.state: dict | None = None
        self.deployed = None
        self.fed: VaeLearner | None = None
        self.fed_opt = None
        self.fed_up = b""
        self.gen = torch.Generator()

    def info(self) -> dict:
        return {"name": self.name, "role": "edge", **node_location(), "n_images": len(self.x),
                "classes": self.classes, "task": self.task}

    def train(self, spec: dict, state: tuple, ev: Evaluators) -> tuple[int, float, tuple, float]:
        """Train the edge learner ``spec`` on the shard. Returns (first-epoch FLOPs, edge-alone FD, the
        advanced random state, training seconds)."""
        restore(state, self.gen)
        t0 = time.perf_counter()
        self.spec = LearnerSpec.from_json(spec)
        learner = VaeLearner(self.spec)
        flops: list[int] = []
        train_vae(learner, self.x, self.cfg.edge_epochs, self.cfg.batch_size, self.cfg.lr, self.gen, flops)
        seconds = time.perf_counter() - t0
        self.state = learner.state_dict()
        return flops[0], ev.fd_vae(learner), baton(self.gen), seconds

    def upload(self, strategy: str) -> tuple[str, bytes]:
        """This edge's message for cloud strategy ``strategy`` (:func:`hil.baim.experiment.edge_upload`)."""
        if self.spec is None:
            raise RuntimeError(f"node {self.name}: nothing to upload; train first")
        return edge_upload(strategy, self.spec, None if strategy == "scratch" else self.state)

    def install(self, task: int, box: list, torch_state: torch.Tensor, seed: int) -> dict:
        """Pull per-task model ``task`` from the cloud, rebuild it and evaluate it on this node's test images
        (held-out negative ELBO, nats per image, noise from ``seed``). Returns bytes, seconds, the NELBO and
        the advanced torch global state (rebuilding draws initial weights before loading them)."""
        if task != self.task:
            raise ValueError(f"node {self.name} serves task {self.task}, not {task}")
        blob, seconds = _pull(box)
        torch.set_rng_state(torch_state)
        self.deployed = unpack_task_model(blob)
        return {"n_bytes": len(blob), "seconds": seconds, "torch_state": torch.get_rng_state(),
                "local_test_nelbo": nelbo(self.deployed, self.x_local_test, seed),
                "n_local_test": len(self.x_local_test)}

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.deployed.reconstruct(x)

    def generate(self, z: torch.Tensor, comps: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.deployed.generate(z, comps)

    def fedavg_init(self, spec: dict, lr: float, torch_state: torch.Tensor) -> torch.Tensor:
        """This client's FedAvg VAE and its Adam (kept across rounds); returns the advanced torch state."""
        torch.set_rng_state(torch_state)
        self.fed = VaeLearner(LearnerSpec.from_json(spec))
        self.fed_opt = torch.optim.Adam(self.fed.parameters(), lr=lr)
        return torch.get_rng_state()

    def fedavg_round(self, box: list, state: tuple, count_flops: bool) -> dict:
        """Pull the global weights, train ``fedavg_local_epochs`` on the shard, keep the result for
        :meth:`fedavg_upload`. Returns received bytes and seconds, FLOPs (first epoch, if asked), the state."""
        blob, seconds = _pull(box)
        restore(state, self.gen)
        with torch.no_grad():
            self.fed.load_state_dict(unpack_state(blob)[0])  # in place: the optimizer keeps its state
        flops: list[int] | None = [] if count_flops else None
        train_vae(self.fed, self.x, self.cfg.fedavg_local_epochs, self.cfg.batch_size, self.cfg.lr, self.gen, flops,
                  opt=self.fed_opt)
        self.fed_up = pack_state(self.fed.state_dict())
        return {"n_bytes": len(blob), "seconds": seconds, "flops": flops[0] if flops else None,
                "state": baton(self.gen)}

    def fedavg_upload(self) -> bytes:
        return self.fed_up

    def close(self) -> None:
        pass


class OnNode:
    """A deployed per-task model as the cloud sees it: ``reconstruct`` and ``generate`` run on its edge node."""

    def __init__(self, handle: NodeHandle):
        self.handle = handle

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return _value(self.handle, self.handle.call("reconstruct", x))

    def generate(self, z: torch.Tensor, comps: torch.Tensor) -> torch.Tensor:
        return _value(self.handle, self.handle.call("generate", z, comps))


class ActorClients:
    """FedAvg's clients on the edge actors (the ``clients_factory`` of :func:`hil.baim.fedavg.run_fedavg`);
    the ``cloud`` client (the proxy set) trains in the cloud's process without traffic."""

    def __init__(self, edges: list[NodeHandle], remote: bool, spec: LearnerSpec, clients: list, local_epochs: int,
                 batch_size: int, lr: float, gen: torch.Generator, meter: TrafficMeter):
        self.edges = {f"node{n}": h for n, h in enumerate(edges)}
        self.remote, self.gen, self.meter = remote, gen, meter
        for name, _ in clients:  # in client order: each draws its initial weights from the run's state
            if name != CLOUD:
                h = self.edges[name]
                torch.set_rng_state(_value(h, h.call("fedavg_init", spec.to_json(), lr, torch.get_rng_state())))
        self.cloud = LocalClients(spec, [c for c in clients if c[0] == CLOUD], local_epochs, batch_size, lr, gen, meter)
        self._box: tuple[int, list] | None = None

    def round(self, r: int, name: str, global_blob: bytes) -> tuple[bytes, int | None]:
        if name == CLOUD:
            return self.cloud.round(r, name, global_blob)
        if self._box is None or self._box[0] != r:  # one copy in the object store per round, pulled by every edge
            self._box = (r, _put(self.remote, global_blob))
        h = self.edges[name]
        got = _value(h, h.call("fedavg_round", self._box[1], baton(self.gen), r == 0))
        restore(got["state"], self.gen)
        self.meter.record("down", name, f"fedavg round {r}", got["n_bytes"], got["seconds"])
        t0 = time.perf_counter()
        up = _value(h, h.call("fedavg_upload"))
        return self.meter.send("up", name, f"fedavg round {r}", up, seconds=time.perf_counter() - t0), got["flops"]


class BaimCloud:
    """The cloud node: receives the edges' uploads, assembles and trains the big model, deploys the per-task
    models to the edges, and is FedAvg's server. See [Note: BAIM on node actors]."""

    def __init__(self, name: str, cfg: dict, edges: list[NodeHandle], threads: int = 1):
        torch.set_num_threads(int(threads))
        self.name, self.edges = name, list(edges)
        self.remote = any(h.remote for h in self.edges)
        self.cfg = _config(cfg)
        _, _, _, data = seeded_split(self.cfg)
        self.shard_sizes = [len(x) for x in data.x_nodes]
        # the cloud keeps its proxy set and the test set; of the edges' shards only their sizes
        import dataclasses

        self.data = dataclasses.replace(data, x_nodes=(), y_nodes=(), x_train=data.x_train[:0], y_train=data.y_train[:0])
        self.gen = torch.Generator()

    def info(self) -> dict:
        return {"name": self.name, "role": "cloud", **node_location(), "n_images": len(self.data.x_cloud)}

    def strategy(self, strategy: str, specs: list[dict], state: tuple, ev: Evaluators, out_dir: str, grid_seed: int,
                 place: bool, edge_flops: list) -> tuple[dict, tuple]:
        """One cloud strategy (:func:`hil.baim.experiment.cloud_strategy`) with uploads pulled from the edges
        and the per-task models deployed to them. Returns its outputs (plus ``transfers`` and ``deployed``:
        each edge's evaluation) and the advanced random state."""
        restore(state, self.gen)
        meter = TrafficMeter()
        received, states = [], []
        for n, h in enumerate(self.edges):
            t0 = time.perf_counter()
            what, blob = _value(h, h.call("upload", strategy))
            spec, weights = cloud_receive(strategy, meter.send("up", f"node{n}", what, blob,
                                                               seconds=time.perf_counter() - t0))
            if spec.to_json() != specs[n]:
                raise RuntimeError(f"node{n} uploaded the architecture {spec.to_json()}, expected {specs[n]}")
            received.append(spec)
            states.append(weights)
        deployed: dict[int, dict] = {}

        def deploy_on_edges(big, members, meter):
            from hil.baim.deploy import pack_task_model

            out = {}
            for t, nodes_t in enumerate(members):
                box = _put(self.remote, pack_task_model(big, t))
                for n in nodes_t:
                    h = self.edges[n]
                    got = _value(h, h.call("install", t, box, torch.get_rng_state(), ev.eval_seed))
                    torch.set_rng_state(got.pop("torch_state"))
                    meter.record("down", f"node{n}", f"per-task model {t}", got["n_bytes"], got["seconds"])
                    deployed[n] = {"task": t, **got}
                    out[n] = OnNode(h)
            return out

        out = cloud_strategy(self.cfg, strategy, received, states, self.data, self.gen, ev, meter, deploy_on_edges,
                             Path(out_dir), grid_seed, place, edge_flops)
        out["transfers"] = [asdict(m) for m in meter.transfers]
        out["deployed"] = {f"node{n}": deployed[n] for n in sorted(deployed)}
        return out, baton(self.gen)

    def fedavg(self, spec: dict, min_rounds: int, state: tuple, evaluate, validate) -> tuple[FedAvgResult, list, tuple]:
        """FedAvg with this node as the server and the edges as clients (:class:`ActorClients`). Returns the
        result, every transfer (as dicts) and the advanced random state."""
        restore(state, self.gen)
        cfg = self.cfg
        meter = TrafficMeter()
        sizes_only = [torch.empty((k, 0)) for k in self.shard_sizes]  # run_fedavg weights clients by len()

        def clients(*args):
            return ActorClients(self.edges, self.remote, *args)

        fed = run_fedavg(LearnerSpec.from_json(spec), sizes_only, min_rounds, cfg.fedavg_local_epochs, cfg.batch_size,
                         cfg.lr, self.gen, meter, evaluate=evaluate,
                         cloud_data=self.data.x_cloud if cfg.fedavg_include_cloud_data else None, validate=validate,
                         patience=cfg.fedavg_patience, max_rounds=cfg.fedavg_max_rounds, clients_factory=clients)
        return fed, [asdict(m) for m in meter.transfers], baton(self.gen)

    def close(self) -> None:
        pass


def _link_summary(transfers: list[dict]) -> dict:
    """Bytes and measured seconds per direction of a list of WireMessage dicts."""
    out = {}
    for d in ("up", "down"):
        ts = [t for t in transfers if t["direction"] == d]
        secs = [t["seconds"] for t in ts if t["seconds"] is not None]
        out[d] = {"messages": len(ts), "bytes": int(sum(t["n_bytes"] for t in ts)),
                  "seconds": float(sum(secs)) if secs else None,
                  "median_message_s": float(np.median(secs)) if secs else None}
    return out


class BaimCluster:
    """The ``nodes`` of :func:`hil.baim.experiment.run_baim` on a :class:`~hil.cluster.driver.Cluster`:
    spawns the edges and the cloud and runs each phase on them (see [Note: BAIM on node actors])."""

    def __init__(self, cluster: Cluster, cfg: BaimConfig, progress=None):
        self.cluster = cluster
        threads = torch.get_num_threads()
        self.edges = [cluster.spawn_actor(f"node{n}", BaimEdge, f"node{n}", n, cfg.to_dict(), threads)
                      for n in range(cfg.n_nodes)]
        self.cloud = cluster.spawn_actor(CLOUD, BaimCloud, CLOUD, cfg.to_dict(), self.edges, threads)
        self.infos = cluster.deploy()
        if progress:
            progress("nodes: " + ", ".join(f"{i['name']} (host {i['host']}, pid {i['pid']})" for i in self.infos))
        self.edge_seconds: list[float] = []
        self.strategies: dict[str, dict] = {}
        self.fed_links: dict = {}

    def train_edges(self, cfg, specs, data, gen, ev, say=lambda msg: None) -> tuple[list[int], list[float]]:
        flops, fds = [], []
        for n, (h, spec) in enumerate(zip(self.edges, specs)):
            f, fd, state, seconds = self.cluster.get(h, h.call("train", spec.to_json(), baton(gen), ev))
            restore(state, gen)
            flops.append(f)
            fds.append(fd)
            self.edge_seconds.append(seconds)
            say(f"edge learner {n + 1}/{len(specs)} trained on {h.name} ({cfg.edge_epochs} epochs, {seconds:.1f} s), "
                f"FD {fd:.1f}")
        return flops, fds

    def strategy(self, cfg, strategy, specs, data, gen, ev, out_dir, grid_seed, place, edge_flops,
                 say=lambda msg: None) -> dict:
        """One strategy on the cloud actor (its epochs are not reported while it runs: one line per phase)."""
        h = self.cloud
        out, state = self.cluster.get(h, h.call("strategy", strategy, [s.to_json() for s in specs], baton(gen), ev,
                                                str(out_dir), grid_seed, place, edge_flops))
        restore(state, gen)
        self.strategies[strategy] = {"links": _link_summary(out["transfers"]), "transfers": out.pop("transfers"),
                                     "deployed": out.pop("deployed")}
        return out

    def fedavg(self, fed_spec, data, cfg, min_rounds, gen, evaluate, validate,
               say=lambda msg: None) -> tuple[FedAvgResult, TrafficMeter]:
        """FedAvg with the cloud actor as server; ``say`` hears of the result (rounds run inside the actor)."""
        from hil.baim.wire import WireMessage

        h = self.cloud
        fed, transfers, state = self.cluster.get(h, h.call("fedavg", fed_spec.to_json(), min_rounds, baton(gen),
                                                           evaluate, validate))
        restore(state, gen)
        self.fed_links = _link_summary(transfers)
        say(f"federated averaging: {fed.rounds} rounds on the node actors")
        return fed, TrafficMeter([WireMessage(**t) for t in transfers])

    def report(self) -> dict:
        """What ran where and what crossed the links (bytes, measured seconds)."""
        mode = self.cluster.mode
        return {"mode": mode if mode in ("none", "local") else "address", "address": self.cluster.address,
                "nodes": self.infos, "edge_train_seconds": self.edge_seconds, "strategies": self.strategies,
                "fedavg_links": self.fed_links}


class MaintainEdge:
    """Edge node ``index`` of ``hil baim-maintain --cluster`` (see [Note: BAIM after deployment on node actors]):
    trains its learner on the pre-deployment part of its shard, uploads it, and fine-tunes the per-task model it
    receives (and a copy of its learner) on its own data that arrived after deployment."""

    def __init__(self, name: str, index: int, cfg: BaimConfig, mcfg, threads: int = 1):
        torch.set_num_threads(int(threads))
        self.name, self.index, self.cfg, self.mcfg = name, int(index), cfg, mcfg
        self.gen = torch.Generator()
        self.learner: VaeLearner | None = None
        self.task = -1

    def info(self) -> dict:
        return {"name": self.name, "role": "edge", **node_location()}

    def start(self, seed: int) -> dict:
        """Rebuild the split of ``seed`` and keep this node's part: its shard cut into before / after
        deployment, the test images of its classes and of its task."""
        from hil.baim.maintain import after_deployment_cut, node_test_sets, seed_split

        self.run_cfg, _, _, _, data, self.eval_seed = seed_split(self.cfg, seed)
        x = data.x_nodes[self.index]
        cut = after_deployment_cut(len(x), self.mcfg.new_fraction)
        self.x_init, self.x_new = x[:cut], x[cut:]
        self.x_local, self.x_task = node_test_sets(data, self.index)
        self.task = int(data.node_task[self.index])
        self.learner = None
        return {"task": self.task, "n_init": len(self.x_init), "n_new": len(self.x_new)}

    def train(self, spec: dict, state: tuple) -> tuple[tuple, float]:
        """Train this node's learner (:func:`hil.baim.maintain.train_edge`); the advanced state and seconds."""
        from hil.baim.maintain import train_edge

        restore(state, self.gen)
        t0 = time.perf_counter()
        self.learner = train_edge(LearnerSpec.from_json(spec), self.x_init, self.run_cfg, self.gen)
        return baton(self.gen), time.perf_counter() - t0

    def upload(self) -> bytes:
        if self.learner is None:
            raise RuntimeError(f"node {self.name}: nothing to upload; train first")
        return pack_state(self.learner.state_dict())

    def finetune(self, task: int, box: list, state: tuple) -> dict:
        """Pull per-task model ``task``, fine-tune it and a copy of this node's learner on this node's new data
        (:func:`hil.baim.maintain.finetune_node`). Returns the NELBOs, bytes and seconds, the advanced state."""
        import copy

        from hil.baim.maintain import finetune_node

        if task != self.task:
            raise ValueError(f"node {self.name} serves task {self.task}, not {task}")
        if self.learner is None:
            raise RuntimeError(f"node {self.name}: no learner to fine-tune; train first")
        blob, seconds = _pull(box)
        restore(state, self.gen)
        t0 = time.perf_counter()
        models = {"deployed": unpack_task_model(blob), "edge": copy.deepcopy(self.learner)}
        rows = finetune_node(models, self.x_new, self.x_local, self.x_task, self.mcfg, self.run_cfg.batch_size,
                             self.gen, self.eval_seed)
        return {"rows": rows, "n_bytes": len(blob), "seconds": seconds, "finetune_s": time.perf_counter() - t0,
                "state": baton(self.gen)}

    def close(self) -> None:
        pass


class MaintainNodes:
    """The ``nodes`` of :func:`hil.baim.maintain.run_maintenance` on a :class:`~hil.cluster.driver.Cluster`:
    one :class:`MaintainEdge` per edge learner; this process is the cloud.

    [Note: BAIM after deployment on node actors]
    For each seed every edge node rebuilds the split (:func:`hil.baim.maintain.seed_split`) and keeps its
    own part; it trains its learner there and the cloud pulls the learner's bytes (timed at the cloud). The
    cloud builds the big models and runs continual learning, few-shot and pruning from the uploaded
    learners; the new task's learners it absorbs are the ones that arrived over the link. Local fine-tuning
    runs on the edges: the cloud boxes each per-task model once (:func:`_put`), every edge of that task pulls
    it (timed at the edge) and fine-tunes it and its own learner on its own after-deployment data. The
    random state goes from node to node as in [Note: BAIM on node actors], so the numbers equal
    :func:`hil.baim.maintain.run_maintenance` without nodes, bit for bit.
    """

    def __init__(self, cluster: Cluster, cfg: BaimConfig, mcfg, progress=None):
        self.cluster, self.say = cluster, progress or (lambda msg: None)
        threads = torch.get_num_threads()
        self.edges = [cluster.spawn_actor(f"node{n}", MaintainEdge, f"node{n}", n, cfg, mcfg, threads)
                      for n in range(cfg.n_nodes)]
        self.infos = cluster.deploy()
        self.say("nodes: " + ", ".join(f"{i['name']} (host {i['host']}, pid {i['pid']})" for i in self.infos))
        self.new_task = cfg.n_tasks - 1  # the task absent from the old big model (hil.baim.maintain [Note: the setting])
        self.seeds: list[dict] = []
        self._box: tuple[int, list] | None = None

    def _seed(self) -> dict:
        return self.seeds[-1]

    def start(self, seed: int) -> None:
        got = self.cluster.get(self.edges[0], [h.call("start", seed) for h in self.edges])
        self.seeds.append({"seed": seed, "edges": {h.name: {"task": g["task"], "n_init": g["n_init"],
                                                            "n_new": g["n_new"]} for h, g in zip(self.edges, got)}})
        self._box = None

    def train_edges(self, specs: list[LearnerSpec], gen: torch.Generator) -> list[VaeLearner]:
        """Each edge trains its learner (one after the other, handing on the random state), then the cloud pulls
        its bytes; returns the cloud's copies (eval mode)."""
        out = []
        for h, spec in zip(self.edges, specs):
            state, train_s = self.cluster.get(h, h.call("train", spec.to_json(), baton(gen)))
            restore(state, gen)
            t0 = time.perf_counter()
            blob = self.cluster.get(h, h.call("upload"))
            up_s = time.perf_counter() - t0
            with torch.random.fork_rng(devices=[]):  # the copy's initial weights must not draw from the run's state
                learner = VaeLearner(spec)
            learner.load_state_dict(unpack_state(blob)[0])
            out.append(learner.eval())
            self._seed()["edges"][h.name].update(train_s=train_s, upload_bytes=len(blob), upload_s=up_s)
            self.say(f"edge learner on {h.name}: trained in {train_s:.1f} s, {len(blob)} B uploaded in {up_s:.4f} s")
        return out

    def finetune(self, n: int, task: int, blob: bytes, gen: torch.Generator) -> dict:
        if self._box is None or self._box[0] != task:  # one copy per per-task model, pulled by its edges
            self._box = (task, _put(self.cluster.remote, blob))
        h = self.edges[n]
        got = self.cluster.get(h, h.call("finetune", task, self._box[1], baton(gen)))
        restore(got["state"], gen)
        self._seed()["edges"][h.name].update(download_bytes=got["n_bytes"], download_s=got["seconds"],
                                             finetune_s=got["finetune_s"])
        return got["rows"]

    def report(self) -> dict:
        """Where each edge ran; per seed, each edge's seconds and bytes and the new task's uploads."""
        for s in self.seeds:
            new = [e for e in s["edges"].values() if e["task"] == self.new_task]
            s["new_task_uploads"] = {"task": self.new_task, "messages": len(new), "bytes": sum(e["upload_bytes"] for e in new),
                                     "seconds": float(sum(e["upload_s"] for e in new))}
        mode = self.cluster.mode
        return {"mode": mode if mode in ("none", "local") else "address", "address": self.cluster.address,
                "nodes": self.infos, "seeds": self.seeds}


def run_maintenance_on(cfg: BaimConfig, mcfg, out_dir: Path | None, cluster: str, progress=None) -> dict:
    """:func:`hil.baim.maintain.run_maintenance` with the edge learners' training and local fine-tuning on
    the edge nodes of ``cluster`` (``none``, ``local`` or a Ray address whose hosts advertise
    ``hil_node:node0`` ..); see [Note: BAIM after deployment on node actors]."""
    from hil.baim.maintain import run_maintenance

    with Cluster(cluster, tuple(f"node{n}" for n in range(cfg.n_nodes)), num_cpus=2) as cl:
        nodes = MaintainNodes(cl, cfg, mcfg, progress)
        return run_maintenance(cfg, mcfg, out_dir, progress=progress, nodes=nodes)


def run_baim_on(cfg: BaimConfig, out_dir: Path, cluster: str, progress=None, resume: bool = True) -> dict:
    """:func:`hil.baim.experiment.run_baim` with its edges and cloud on the node actors of ``cluster``
    (``none``, ``local`` or a Ray address whose hosts advertise ``hil_node:node0`` .. and ``hil_node:cloud``)."""
    from hil.baim.experiment import run_baim

    with Cluster(cluster, node_names(cfg.n_nodes), num_cpus=2) as cl:
        nodes = BaimCluster(cl, cfg, progress)
        return run_baim(cfg, out_dir, progress=progress, resume=resume, nodes=nodes)
