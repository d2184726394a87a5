"""DataFlux real-time job flows: the XML format, its nodes, compiled flows and the engine pool."""
