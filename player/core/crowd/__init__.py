"""Sessions that share a bottleneck (a crowd), simulated: the spec and the event-driven engine.

`simulate_crowd([Bottleneck(trace, [CrowdClient(content, "bola"), ...], bulk=[BulkFlow(20, 60)])])`
returns one `GroupResult` per bottleneck. Metrics of a group are in `player.core.crowd_metrics`.
"""
from player.core.crowd.engine import ClientResult, GroupResult, simulate_crowd
from player.core.crowd.spec import Bottleneck, BulkFlow, CrowdClient, TcpModel, scale_capacity, validate

__all__ = ["Bottleneck", "BulkFlow", "ClientResult", "CrowdClient", "GroupResult", "TcpModel", "scale_capacity", "simulate_crowd",
           "validate"]
