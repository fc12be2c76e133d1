"""Throughput estimators shared by the policies, vectorised over sessions (numpy only).

* `ewma`: the harmonic mean of a history, dual EWMAs of per-download samples, JavaScript
  rounding (`harmonic_mean`, `newest_sample`, `DualEwma`, `js_round`).
* `chunked`: a throughput sample from one chunked (CMAF low-latency) download, from the
  times its chunks arrived — moof-parsing, downloaded-data and AAST (dash.js), and the
  sampler a policy uses to pick one (`ChunkedSampler`).
"""
from abr.estimators.chunked import (
    CHUNK_ESTIMATORS, AastModel, ChunkedSampler, downloaded_data_time_s, moof_throughput_bps,
    whole_request_time_s,
)
from abr.estimators.ewma import DualEwma, harmonic_mean, js_round, newest_sample

__all__ = [
    "CHUNK_ESTIMATORS", "AastModel", "ChunkedSampler", "DualEwma", "downloaded_data_time_s",
    "harmonic_mean", "js_round", "moof_throughput_bps", "newest_sample", "whole_request_time_s",
]
