"""dash.js's LoL+ (src/streaming/rules/abr/lolp/), one module per dash.js file:
`qoe_evaluator` (LoLpQoEEvaluator), `weight_selector` (LoLpWeightSelector),
`learning_controller` (LearningAbrController, the self-organising map) and `lolp_rule`
(LoLpRule). Bentaleb, Akcay, Lim, Begen and Zimmermann, "Catching the moment with LoL+ in
Twitch-like low-latency live streaming platforms", IEEE Trans. Multimedia 2021."""
