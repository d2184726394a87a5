"""Running flows: stored definitions, the engine pool, the fleet hand-off, the engine mirror, the
recorder and its writer process, and the prepared row helpers they share. Built on
jobs.flows.language, which never imports from here."""
