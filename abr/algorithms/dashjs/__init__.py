"""dash.js 5's default adaptation, rule for rule: the `dashjs` policy.

Read from dash.js 5.2 (github.com/Dash-Industry-Forum/dash.js, `src/core/Settings.js`,
`src/streaming/controllers/AbrController.js`, `ThroughputController.js`,
`src/streaming/models/ThroughputModel.js`, `src/streaming/rules/abr/*.js`,
`src/streaming/rules/SwitchRequestHistory.js`, `ScheduleController.js`) and written again
here in numpy, vectorised over sessions, one module per dash.js file:

* `throughput_model`   — ThroughputModel / ThroughputController (EWMA of whole-kbit/s samples)
* `throughput_rule`    — ThroughputRule
* `bola_rule`          — BolaRule (BOLA-E)
* `insufficient_buffer_rule` — InsufficientBufferRule
* `switch_history_rule` — SwitchHistoryRule over SwitchRequestHistory
* `abandon_requests_rule` — AbandonRequestsRule
* `collection`         — ABRRulesCollection (lowest request wins) and the DYNAMIC strategy
* `policy`             — `DashJs`, AbrController.checkPlaybackQuality putting them together
* `settings`           — Settings.js values the dash.js policies share
* `l2a_rule`, `lolp/`  — L2ARule and LoL+ (LoLpRule, LearningAbrController, LoLpQoEEvaluator,
                         LoLpWeightSelector), run alone as the `l2a` and `lolp` policies
                         (`low_latency`), as dash.js documents them

Each rule answers a `SwitchRequest` per row: the rung it asks for (or NO_CHANGE) and its
reason. DroppedFramesRule is off by default in dash.js 5 and the observation carries no
frame counts, so it is not here.

With dash.js's defaults: the first segment is the rung at or below 1000 kbit/s
(`DEFAULT_VIDEO_BITRATE`; a saved bitrate in localStorage would replace it, the harness
runs an empty browser profile). Every later segment (`checkPlaybackQuality`, once per
media segment, right after the previous one was appended), the active rules each may ask
for a rung and the lowest request wins; no request keeps the current rung; while an
abandonment holds (ABANDON_LOAD, 10 s) a request to go up is not applied.

The buffer target (18 s, 30 s at the top rung, 60 s at the top for content of 600 s or
more) and the 500 ms re-check of a full buffer are session semantics: the `dashjs` preset.
BOLA's wish to delay a request is reported (`last_info["delay_s"]`), not applied; with
`chunk_estimator=aast` the AAST model's request delay is asked for (`last_delay_s`).

Units: seconds, bits per second, bytes (dash.js's kbit/s and ms converted at the edges).
"""
from abr.algorithms.dashjs.collection import RULES
from abr.algorithms.dashjs.policy import DashJs
from abr.algorithms.dashjs.settings import DEFAULT_VIDEO_BPS
from abr.algorithms.dashjs.switch_request import NO_CHANGE, SwitchRequest, js_round, optimal_rung

__all__ = ["DEFAULT_VIDEO_BPS", "DashJs", "NO_CHANGE", "RULES", "SwitchRequest", "js_round", "optimal_rung"]
