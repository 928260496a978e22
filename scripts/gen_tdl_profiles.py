"""Regenerate hil/channel/tdl_profiles.json, the 3GPP TDL tables hil.channel ships, from Sionna.

Run once when the tables change: ``python scripts/gen_tdl_profiles.py`` (needs ``pip install
sionna-no-rt``). It reads the tables through Sionna's public resource API
(``sionna.phy.channel.tr38901.models``): TDL-A..E of TR 38.901 v16.1 and v19.2 (delays normalised by
the RMS delay spread) and the fixed TS 38.101-4 V19.2.2 profiles (delays in ns), and writes them
unchanged (``los``, ``num_clusters``, ``scale_delays``, ``delays``, ``powers`` in dB).
``tests/unit/channel/test_channel_tdl.py`` checks the shipped file against Sionna when it is installed.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "hil" / "channel" / "tdl_profiles.json"
SCALABLE = ("TDL-A", "TDL-B", "TDL-C", "TDL-D", "TDL-E")
FIXED = ("TDL-A10", "TDL-A30", "TDL-B100", "TDL-C60", "TDL-C300", "TDL-D10", "TDL-D30")
VERSIONS = ("16.1", "19.2")
KEYS = ("los", "num_clusters", "scale_delays", "delays", "powers")


def main() -> int:
    try:
        from sionna.phy.channel.tr38901 import models
    except ImportError:
        print("error: needs Sionna: pip install sionna-no-rt", file=sys.stderr)
        return 1

    def table(source) -> dict:
        p = models.load_json(source)
        return {k: p[k] for k in KEYS}

    data = {
        "source": f"sionna-no-rt {importlib.metadata.version('sionna-no-rt')}, "
                  "sionna.phy.channel.tr38901.models (3GPP TR 38.901 Table 7.7.2, TS 38.101-4 V19.2.2)",
        "scalable": {v: {n: table(models.parameter_file(f"{n}.json", v)) for n in SCALABLE} for v in VERSIONS},
        "fixed": {n: table(models.fixed_tdl_parameter_file(f"{n}.json")) for n in FIXED},
    }
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
