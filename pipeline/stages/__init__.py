"""One module per step of the design loop, in order. Each exposes `run(cfg, paths, tracker)`."""

STAGES = ("goal", "prepare", "split", "design", "train", "redesign", "validate", "export", "report")
