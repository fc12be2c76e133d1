"""Experiments (sweeps), statistics, plots, benches and the bundled data paths."""
