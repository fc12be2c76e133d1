"""Fidelity: our simulator against the peers it claims to reproduce, session by session.

One module per peer (`sabre` here; Pensieve, our real-time player and dash.js can follow
the same shape): it runs the peer's own code on a trace, runs our simulator on the same
trace and content, and returns `agreement.SessionPair`s; `agreement` judges them against
the shared goals (5% average bitrate, 0.5 s rebuffering, 90% of sessions) and writes the
report. `abrlab fidelity PEER` (player/cli/commands/fidelity.py) is the command line.
"""
