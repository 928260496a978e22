#!/usr/bin/env python
"""Diagnose a BAIM run: what each mixture component of each squad generates.

Usage: python benchmarks/baim_diagnose.py RUN_DIR   (a folder written by `hil baim` / benchmarks/baim.py)

Rebuilds each ``big_<strategy>.pt`` from its state dict (architecture read off the weight shapes and
projection names), draws 300 samples per component from N(0, I), and prints per component: the
classes a logistic-regression digits classifier (sklearn, trained on all digits) assigns to them
(top two with shares), its mean confidence, and the sample diversity (mean per-pixel std). A component
whose samples are confidently one or two classes is a sharp expert; low confidence means blended digits.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import torch

from hil.baim.assembly import BigModel, VaeSquad
from hil.baim.learners import LearnerSpec


def rebuild(state: dict, cfg: dict) -> BigModel:
    squads = []
    t = 0
    while f"squads.{t}.prior_logits" in state:
        specs, li = [], 0
        while f"squads.{t}.learners.{li}.enc_head.weight" in state:
            widths, s = [], 0
            while f"squads.{t}.learners.{li}.enc.stages.{s}.weight" in state:
                widths.append(state[f"squads.{t}.learners.{li}.enc.stages.{s}.weight"].shape[0])
                s += 1
            specs.append(LearnerSpec(tuple(widths), cfg["latent_dim"]))
            li += 1
        keys = {side: sorted({m.group(1) for k in state
                              if (m := re.match(rf"squads\.{t}\.{side}_proj\.proj\.(\w+)\.weight$", k))})
                for side in ("enc", "dec")}
        squads.append(VaeSquad(specs, cfg["top_k"], cfg["max_hop"], keys["enc"], keys["dec"]))
        t += 1
    big = BigModel(squads, state["task_prior"])
    big.load_state_dict(state)
    return big.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    d = load_digits()
    clf = LogisticRegression(max_iter=2000).fit(d.data / 16.0, d.target)
    cfg = json.loads((args.run_dir / "report.json").read_text())["config"]
    out = {}
    for path in sorted(args.run_dir.glob("big_*.pt")):
        name = path.stem.removeprefix("big_")
        big = rebuild(torch.load(path, weights_only=True), cfg)
        rows = []
        g = torch.Generator().manual_seed(0)
        for t, squad in enumerate(big.squads):
            for c in range(squad.n):
                with torch.no_grad():
                    imgs = squad.generate(torch.randn(args.n, squad.latent_dim, generator=g),
                                          torch.full((args.n,), c, dtype=torch.int64)).numpy()
                proba = clf.predict_proba(imgs)
                counts = np.bincount(proba.argmax(1), minlength=10) / args.n
                top = np.argsort(counts)[::-1][:2]
                rows.append({"task": t, "comp": c, "top_classes": [[int(k), round(float(counts[k]), 2)] for k in top],
                             "confidence": round(float(proba.max(1).mean()), 3),
                             "diversity": round(float(imgs.std(0).mean()), 4)})
        out[name] = rows
        conf = np.mean([r["confidence"] for r in rows])
        div = np.mean([r["diversity"] for r in rows])
        print(f"{name}: mean confidence {conf:.3f}, mean diversity {div:.4f}")
        for r in rows:
            print("   ", r)
    (args.run_dir / "diagnose.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
