"""Data quality for flow nodes: gender, parsing, standardization, match codes, clusters and
identification, each backed by a maintained library and its reference data (never lists kept
here). Plain functions over values, so the flow language's nodes and the benchmarks call the
same code; nothing here knows about flows, engines or Django."""
