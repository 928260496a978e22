"""Baseline: federated averaging of one VAE over the same nodes, with measured traffic."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from hil.baim.learners import LearnerSpec, VaeLearner, train_vae
from hil.baim.wire import TrafficMeter, pack_state, unpack_state

logger = logging.getLogger(__name__)


@dataclass
class FedAvgResult:
    model: VaeLearner
    fd_per_round: list[float] = field(default_factory=list)  # index 0 = before round 1
    edge_flops_per_epoch: list[int] = field(default_factory=list)  # per node, first local epoch
    aggregation_adds_per_round: int = 0


def run_fedavg(spec: LearnerSpec, node_data: list[torch.Tensor], rounds: int, local_epochs: int,
               batch_size: int, lr: float, gen: torch.Generator, meter: TrafficMeter,
               evaluate=None, cloud_data: torch.Tensor | None = None) -> FedAvgResult:
    """R rounds: the server sends the global weights (bytes) to every node, each trains locally for
    ``local_epochs`` and sends its weights back (bytes); the server averages weighted by sample count.

    ``cloud_data`` (if given) is trained on at the server as one more client, without traffic.
    ``evaluate(model) -> float`` is called before round 1 and after every round.
    """
    model = VaeLearner(spec)
    result = FedAvgResult(model)
    n_params = sum(p.numel() for p in model.parameters())
    clients = [(f"node{n}", x) for n, x in enumerate(node_data)]
    if cloud_data is not None:
        clients.append(("cloud", cloud_data))
    result.aggregation_adds_per_round = n_params * len(clients)
    if evaluate is not None:
        result.fd_per_round.append(evaluate(model))
    for r in range(rounds):
        global_blob = pack_state(model.state_dict())
        states, weights = [], []
        for name, x in clients:
            local = VaeLearner(spec)
            blob = global_blob if name == "cloud" else meter.send("down", name, f"fedavg round {r}", global_blob)
            local.load_state_dict(unpack_state(blob)[0])
            flops = [] if (r == 0 and name != "cloud") else None
            train_vae(local, x, local_epochs, batch_size, lr, gen, flops)
            if flops is not None:
                result.edge_flops_per_epoch.append(flops[0])
            up = pack_state(local.state_dict())
            if name != "cloud":
                up = meter.send("up", name, f"fedavg round {r}", up)
            states.append(unpack_state(up)[0])
            weights.append(len(x))
        total = float(sum(weights))
        avg = {k: sum(s[k] * (w / total) for s, w in zip(states, weights)) for k in states[0]}
        model.load_state_dict(avg)
        if evaluate is not None:
            result.fd_per_round.append(evaluate(model))
        logger.debug("fedavg round %d done", r)
    return result
