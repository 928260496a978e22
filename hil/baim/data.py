"""sklearn's 8x8 digits (offline), split into a test set, a cloud proxy set and non-IID edge shards."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hil.baim.config import BaimConfig

N_CLASSES = 10
DATA_DIM = 64  # 8 x 8 pixels


@dataclass(frozen=True)
class DigitsSplit:
    """Tensors are float32 pixels in [0, 1], shape [n, 64]; labels int64 [n]; tasks int64 [n].

    ``node_classes[n]`` lists the digit classes in node n's shard; ``node_task[n]`` is its squad.
    """

    x_test: torch.Tensor
    y_test: torch.Tensor
    x_cloud: torch.Tensor
    y_cloud: torch.Tensor
    x_train: torch.Tensor  # all training images (cloud + edges), for the evaluation classifier
    y_train: torch.Tensor
    x_nodes: tuple[torch.Tensor, ...]
    y_nodes: tuple[torch.Tensor, ...]
    node_classes: tuple[tuple[int, ...], ...]
    node_task: tuple[int, ...]
    n_tasks: int

    def task_of(self, y: torch.Tensor) -> torch.Tensor:
        """Task index of digit labels: classes are split into ``n_tasks`` contiguous groups."""
        return torch.div(y, N_CLASSES // self.n_tasks, rounding_mode="floor")


def node_class_plan(cfg: BaimConfig) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]:
    """Which classes each node holds and its task: node n serves task n mod M and holds
    ``classes_per_node`` consecutive classes (cyclically) of that task's class group."""
    group = N_CLASSES // cfg.n_tasks
    classes, tasks = [], []
    for n in range(cfg.n_nodes):
        t, k = n % cfg.n_tasks, n // cfg.n_tasks
        classes.append(tuple(sorted(t * group + (k + c) % group for c in range(cfg.classes_per_node))))
        tasks.append(t)
    return tuple(classes), tuple(tasks)


def load_digits_split(cfg: BaimConfig, rng: np.random.Generator) -> DigitsSplit:
    """Load digits and split them (stratified test and cloud sets; disjoint non-IID edge shards).

    Every sample of a class that is in no node's plan goes to no node (it stays unused); with the
    default plan every class is held by ``classes_per_node * n_nodes / 10`` nodes and its samples are
    divided evenly among them.
    """
    from hil.data import digits_arrays

    x, y = digits_arrays()  # float32 [1797, 64] in [0, 1], int64 labels
    test_idx, cloud_idx, edge_idx = [], [], []
    for c in range(N_CLASSES):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(cfg.test_fraction * len(idx)))
        n_cloud = int(round(cfg.cloud_fraction * (len(idx) - n_test)))
        test_idx.append(idx[:n_test])
        cloud_idx.append(idx[n_test : n_test + n_cloud])
        edge_idx.append(idx[n_test + n_cloud :])
    node_classes, node_task = node_class_plan(cfg)
    holders = {c: [n for n in range(cfg.n_nodes) if c in node_classes[n]] for c in range(N_CLASSES)}
    per_node: list[list[np.ndarray]] = [[] for _ in range(cfg.n_nodes)]
    for c in range(N_CLASSES):
        if holders[c]:
            for part, n in zip(np.array_split(edge_idx[c], len(holders[c])), holders[c]):
                per_node[n].append(part)
    node_idx = [rng.permutation(np.concatenate(p)) for p in per_node]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    test = np.concatenate(test_idx)
    cloud = rng.permutation(np.concatenate(cloud_idx))
    train = np.concatenate([cloud, *node_idx])
    return DigitsSplit(
        x_test=t(x[test]), y_test=t(y[test]), x_cloud=t(x[cloud]), y_cloud=t(y[cloud]),
        x_train=t(x[train]), y_train=t(y[train]),
        x_nodes=tuple(t(x[i]) for i in node_idx), y_nodes=tuple(t(y[i]) for i in node_idx),
        node_classes=node_classes, node_task=node_task, n_tasks=cfg.n_tasks,
    )


def batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Shuffled index batches covering ``range(n)`` once (last batch may be short)."""
    perm = torch.randperm(n, generator=gen)
    return list(torch.split(perm, batch_size))
