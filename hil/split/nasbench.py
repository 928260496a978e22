"""JMSNAS on the bench: search over the bench's nodes and links, write the front, read a point back.

``hil nas --bench FILE`` reads the bench topology (the TOML of ``hil/split/examples/bench.toml``:
nodes with their compute, links with their rate; a radio link is over the air, see
hil.split.topology [Note: bench topology files]) and runs :func:`hil.split.nas.run_jmsnas` on it.
A probe report of ``hil sim probe`` (``--probe DIR``) replaces a link's configured numbers with the
measured ones (see [Note: probed links]). The output folder holds ``front.json``
(:func:`write_front`): every front point with its architecture, its splits (the layer -> node
assignment, each transfer with its route and whether it crosses an OTA hop) and its predicted latency
and accuracy, plus what a deployment needs (the topology as searched, each link's channel spec, the
training config). ``hil run --from-nas DIR --point K`` (:mod:`hil.cluster.nas`) deploys point K.

[Note: probed links]
A probe report names the two nodes it sounded (``tx``, ``rx``) and what it measured: ``mean_snr_db``
(per receive antenna, averaged over bursts) at ``sample_rate_hz``. On an over-the-air link of the bench
the cost model's rate is channel uses per second, so the probe's sample rate replaces the link's
``sample_rate_hz``, and the measured SNR replaces the ``snr_db`` of the link's channel spec (the
channel a deployment simulates on that hop). On a digital link with a ``bandwidth_hz`` the measured SNR
gives the Shannon rate (hil.split.topology [Note: link cost model]) in place of the configured rate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from hil._io import atomic_write_json, config_error, load_mapping
from hil.errors import ConfigError
from hil.split.nas import Arch, Candidate, NASConfig, NASResult, SearchSpace, NasTraining, run_jmsnas
from hil.split.topology import Topology, _ends, _read_mapping

FRONT_FILE = "front.json"


@dataclass(frozen=True)
class BenchTopology:
    """A bench read for the search: the placement topology, each link's channel spec by its ends
    (``(a, b)`` as written in the file), and the probes applied (``[{tx, rx, snr_db, sample_rate_hz}]``)."""

    topology: Topology
    channels: Mapping[tuple[str, str], Mapping[str, Any]]
    probes: tuple[Mapping[str, Any], ...] = ()

    def channel(self, a: str, b: str) -> dict[str, Any]:
        """The channel spec of the link between ``a`` and ``b`` (either order); {} when it has none."""
        return dict(self.channels.get((a, b)) or self.channels.get((b, a)) or {})


def _probe(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    p = p / "report.json" if p.is_dir() else p
    rep = load_mapping(p, "probe report")
    for key in ("tx", "rx", "mean_snr_db", "sample_rate_hz"):
        if key not in rep:
            raise config_error(f"{p}: {key}", "missing; give the report.json that `hil sim probe --out DIR` writes")
    return {"tx": str(rep["tx"]), "rx": str(rep["rx"]), "snr_db": float(rep["mean_snr_db"]),
            "sample_rate_hz": float(rep["sample_rate_hz"]), "file": str(p)}


def load_bench_topology(path: str | Path, probes: Sequence[str | Path] = ()) -> BenchTopology:
    """Read a bench topology file and apply probe reports (see [Note: probed links]). ConfigError on
    anything wrong (a probe of a pair of nodes without a link names the file and the nodes)."""
    raw = _read_mapping(Path(path))
    links = [dict(ln) for ln in raw.get("links", [])]
    applied = []
    for src in probes:
        pr = _probe(src)
        hit = [ln for ln in links if (ends := _ends(ln)) is not None and set(ends) == {pr["tx"], pr["rx"]}]
        if not hit:
            raise ConfigError(f"{pr['file']}: probed {pr['tx']} -> {pr['rx']} but {path} has no link between "
                              "them; probe a link of this bench (hil sim probe --tx A --rx B)")
        ln = hit[0]
        if ln.get("ota"):
            ln["sample_rate_hz"] = pr["sample_rate_hz"]
            ln["channel"] = {**dict(ln.get("channel") or {}), "snr_db": pr["snr_db"]}
        else:
            if "bandwidth_hz" not in ln:
                raise ConfigError(f"{path}: link {pr['tx']}-{pr['rx']} has no bandwidth_hz, so the probe's SNR "
                                  f"({pr['snr_db']:.2f} dB) gives no rate; add bandwidth_hz to that link")
            for k in ("bytes_per_s", "mbit_per_s"):
                ln.pop(k, None)
            ln["snr_db"] = pr["snr_db"]
        applied.append(pr)
    raw = {**raw, "links": links}
    channels = {ends: dict(ln["channel"]) for ln in links
                if (ends := _ends(ln)) is not None and isinstance(ln.get("channel"), Mapping)}
    return BenchTopology(Topology.from_dict(raw), channels, tuple(applied))


def point_dict(k: int, c: Candidate, bench: BenchTopology) -> dict[str, Any]:
    """One front point as front.json writes it: architecture, splits, predicted latency and accuracy."""
    topo = bench.topology
    transfers = []
    for t in c.plan.transfers:
        route = list(t.route) or [t.src, t.dst]
        hops = [{"a": a, "b": b, "ota": bool((ln := topo.best_link(a, b, t.nbytes)) is not None and ln.ota)}
                for a, b in zip(route[:-1], route[1:])]
        transfers.append({"layer": t.layer, "src": t.src, "dst": t.dst, "bytes": t.nbytes, "time_s": t.time_s,
                          "route": route, "hops": hops})
    return {"index": k, "arch": c.arch.to_dict(), "key": c.arch.key(),
            "assignment": dict(c.plan.assignment), "cuts": c.plan.cuts, "transfers": transfers,
            "ota_splits": sum(h["ota"] for t in transfers for h in t["hops"]),
            "predicted": {"latency_s": c.latency_s, "compute_s": c.plan.compute_s, "comm_s": c.plan.comm_s,
                          "accuracy": 1.0 - c.error, "error": c.error, "error_split": "validation",
                          "flops": c.flops},
            "plan": c.plan.to_dict()}


def write_front(out: Path, config: NASConfig, bench_path: str, bench: BenchTopology, front: Sequence[Candidate],
                **extra: Any) -> Path:
    """Write ``out/front.json`` atomically (see the module docstring): the points of ``front`` (in its
    order, usually by latency) and ``extra`` (the search's summary); returns its path."""
    doc = {
        "bench": bench_path,
        "probes": [dict(p) for p in bench.probes],
        "topology": bench.topology.to_dict(),
        "channels": [{"a": a, "b": b, "channel": dict(ch)} for (a, b), ch in bench.channels.items()],
        "nas": asdict(config),
        "points": [point_dict(k, c, bench) for k, c in enumerate(front)],
        **extra,
    }
    path = Path(out) / FRONT_FILE
    atomic_write_json(path, doc)
    return path


def run_bench_nas(config: NASConfig, bench_path: str | Path, probes: Sequence[str | Path] = (),
                  progress: Callable[[str], None] | None = None) -> tuple[BenchTopology, NASResult]:
    """Read the bench (with probes) and run JMSNAS on its topology."""
    bench = load_bench_topology(bench_path, probes)
    return bench, run_jmsnas(config, bench.topology, progress=progress)


@dataclass(frozen=True)
class FrontPoint:
    """A front point read back from a ``hil nas --bench`` folder, with what deploying it needs."""

    index: int
    arch: Arch
    space: SearchSpace
    train: NasTraining
    point: Mapping[str, Any]
    topology: Topology
    channels: Mapping[tuple[str, str], Mapping[str, Any]]
    accuracy: float
    deploy_epochs: int
    folder: str

    def channel(self, a: str, b: str) -> dict[str, Any]:
        return dict(self.channels.get((a, b)) or self.channels.get((b, a)) or {})


def load_front_point(folder: str | Path, k: int) -> FrontPoint:
    """Point ``k`` of ``folder/front.json``; ConfigError when the folder or the point is missing."""
    path = Path(folder) / FRONT_FILE
    if not path.is_file():
        raise ConfigError(f"{path} not found; run `hil nas --bench FILE --out {folder}` first")
    doc = load_mapping(path, "JMSNAS front")
    points = doc.get("points") or []
    if not 0 <= k < len(points):
        raise config_error("--point", f"{path} has {len(points)} front points (0..{len(points) - 1})", k)
    cfg = NASConfig.from_dict(doc["nas"])
    p = points[k]
    arch = Arch(tuple(p["arch"]["widths"]), tuple(p["arch"]["depths"]), tuple(p["arch"]["kernels"]))
    channels = {(c["a"], c["b"]): c["channel"] for c in doc.get("channels", [])}
    acc = float(cfg.accuracy)
    if not math.isfinite(acc):
        raise config_error(f"{path}: nas.accuracy", "must be a number in (0, 1]", acc)
    return FrontPoint(k, arch, cfg.space, cfg.train, p, Topology.from_dict(doc["topology"]), channels, acc,
                      cfg.deploy_epochs, str(folder))
