"""Built-in policies; importing this package registers them.

One module per family, each citing the paper or player it follows:
simple (fixed, lowest, highest, random), rate (rb), throughput (dash.js / Shaka / Sabre
EWMA rule), festive, bba, bola (BOLA-BASIC), bolae (dash.js BOLA-E), dynamic (dash.js
DYNAMIC), mpc (mpc, robustmpc), fastmpc (table-driven MPC), dashjs (dash.js 5's rules:
dashjs; its low-latency rules alone: l2a, lolp), sabre (Sabre's own bola, bolae,
throughput, dynamic and dynamicdash, as sabre-*).
"""
from abr.algorithms import simple  # noqa: F401
from abr.algorithms import rate  # noqa: F401
from abr.algorithms import throughput  # noqa: F401
from abr.algorithms import festive  # noqa: F401
from abr.algorithms import bba  # noqa: F401
from abr.algorithms import bola  # noqa: F401
from abr.algorithms import bolae  # noqa: F401
from abr.algorithms import dynamic  # noqa: F401
from abr.algorithms import mpc  # noqa: F401
from abr.algorithms import fastmpc  # noqa: F401
from abr.algorithms import dashjs  # noqa: F401
from abr.algorithms.dashjs import low_latency  # noqa: F401
from abr.algorithms import sabre  # noqa: F401
