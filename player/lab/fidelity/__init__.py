"""Fidelity: our simulator against the peers it claims to reproduce, session by session.

One module per peer (`sabre`, `pensieve` and `player`, our own HTTP player played in real
time; dash.js can follow the same shape): it runs the peer's own code on a trace, runs our
simulator on the same trace and content, and judges the two session by session.
`agreement` holds the shared judgement and report (5% average bitrate, 0.5 s rebuffering,
90% of sessions), which `sabre` uses; `pensieve` compares QoE; `player` the rungs and QoE
(`player.lab.prediction`: 90% of segments at the same rung, QoE within 2%). `abrlab fidelity PEER`
(player/cli/commands/fidelity.py) is the command line.
"""
