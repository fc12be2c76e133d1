"""Real players through the emulator.

`player.cli.interop.dashjs` runs the DASH reference player, dash.js 5, in headless Chromium
against our shaped edge and reports its session in the schema of `abrlab simulate --json`
and `abrlab play --headless --json`. The browser, dash.js and the driver are installed by
`make interop` into `.interop/` (not in the repository); `availability()` says whether
they are there.
"""
from player.cli.interop.dashjs import InteropUnavailable, availability, find_setup  # noqa: F401
