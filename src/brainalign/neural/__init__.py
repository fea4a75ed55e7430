"""Neural recordings: schema, loaders of published formats, simulated recordings (being built)."""
