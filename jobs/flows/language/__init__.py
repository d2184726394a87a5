"""The flow language: the XML format (parser), its values and types, its nodes and the compiler
that turns a document into a runnable flow. It knows nothing of engines, workers or recording
(jobs.flows.runtime), which import it, never the other way round."""
