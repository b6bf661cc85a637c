"""``residency bench``: pass-through baselines and the screening topology on one broker, same events.

``events`` pads the demo generator's events to ~1 KB; ``passthrough`` holds the three baselines
(raw aiokafka, naive Faust, tuned Faust) run as child processes; ``measure`` reads end offsets,
record timestamps and RSS; ``run`` drives a whole benchmark; ``recovery`` times a table rebuild.
"""
