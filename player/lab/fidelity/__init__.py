"""Fidelity: our simulator against the peers it claims to reproduce, session by session.

One module per peer (`pensieve` here): it runs the peer's own code on a trace, runs our
simulator on the same trace and content, and judges the two session by session.
`abrlab fidelity PEER` (player/cli/commands/fidelity.py) is the command line.
"""
