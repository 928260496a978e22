"""hil.split: the split-DNN placement engine and JMSNAS (docs/placement.md).

Torch-free: :mod:`hil.split.profile` (Profile, Layer), :mod:`hil.split.topology` (Topology, Node, Link),
:mod:`hil.split.plan` (Problem, Plan), :mod:`hil.split.solvers` (solve, place, baselines).
With torch: :mod:`hil.split.trace` (profile_model), :mod:`hil.split.zoo` (VGG16, ResNet18, DigitsCNN),
:mod:`hil.split.execute` (split_model, OTAActivationLink), :mod:`hil.split.nas` (run_jmsnas).
"""

from hil.split.plan import Plan, Problem
from hil.split.profile import Layer, Profile
from hil.split.solvers import PlacementReport, baselines, place, solve
from hil.split.topology import Link, Node, Topology

__all__ = ["Layer", "Link", "Node", "PlacementReport", "Plan", "Problem", "Profile", "Topology", "baselines",
           "place", "solve"]
