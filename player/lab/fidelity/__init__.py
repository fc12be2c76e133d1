"""Fidelity: our simulator against the peers it claims to reproduce, session by session.

One module per peer (`sabre` and `pensieve` here; our real-time player and dash.js can
follow the same shape): it runs the peer's own code on a trace, runs our simulator on the
same trace and content, and judges the two session by session. `agreement` holds the
shared judgement and report (5% average bitrate, 0.5 s rebuffering, 90% of sessions),
which `sabre` uses; `pensieve` compares QoE. `abrlab fidelity PEER`
(player/cli/commands/fidelity.py) is the command line.
"""
