"""Plain JSON from what the rules compute (numpy scalars and arrays, NaN, infinities), in a
module of its own so that writers of results (the sweeps, the crowd reports) need not load
the typed events to get it."""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def json_safe(v: Any) -> Any:
    """A value as plain JSON: numpy scalars and arrays to Python, NaN and ±inf to None."""
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, np.ndarray):
        return json_safe(v.tolist())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
