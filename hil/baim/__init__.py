"""hil.baim: cloud-edge big-model synergy (BAIM, arXiv 2401.01666) on 8x8 digits. See docs/baim.md.

Public API (import from the submodules; this package imports nothing heavy):

- ``hil.baim.config``: ``BaimConfig``, ``load_baim_config(path=None, **overrides)``, ``QUICK_OVERRIDES``
- ``hil.baim.experiment``: ``run_baim(cfg, out_dir, progress=None) -> dict`` (writes the report folder)
- ``hil.baim.assembly``: ``assemble(...)``, ``BigModel``, ``VaeSquad``, ``ProjectionSet``, ``TSGate``
- ``hil.baim.deploy``: ``pack_task_model``, ``unpack_task_model``, ``split_by_task``, ``deploy``,
  ``check_exact``, ``task_model_profile``, ``place_task_models``
- ``hil.baim.wire``: ``pack_state``, ``unpack_state``, ``TrafficMeter``
- ``hil.baim.fedavg``: ``run_fedavg``;  ``hil.baim.metrics``: ``frechet_distance``, ``FrechetEvaluator``
- ``hil.baim.maintain``: ``load_maintain_config``, ``run_maintenance`` (after deployment: local fine-tuning,
  continual learning, few-shot, pruning), ``prune_big``, ``prune_experts``, ``extend_with_squad``
"""
