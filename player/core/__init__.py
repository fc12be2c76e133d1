"""The session rules, written once and vectorised over rows: buffer, session state, the sans-IO core, the batch simulator, presets, devices, QoE, the one session summary."""
