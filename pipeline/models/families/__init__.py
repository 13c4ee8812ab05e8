"""One file per model family. Each registers a :class:`pipeline.models.registry.Family`: its
name, the input kinds it reads, its design space (ranges and choices with defaults), its depth
limit for an input shape, and its builder. A new family is a new file here (and, for users to
see and edit its ranges, a section in conf/model/auto.yaml)."""
