"""Pure data: costs, vocabularies, tensor specs, op calls, graph nodes and the Report records.

Imports neither torch nor networkx nor anything above it."""
