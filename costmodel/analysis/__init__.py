"""Functions of an annotated cost graph: annotate, structure, latency, guidelines, training cost."""
