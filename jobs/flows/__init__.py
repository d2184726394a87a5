"""DataFlux real-time job flows.

`language/` is the flow XML and what it compiles to; `runtime/` stores, loads, runs and records
flows; `errors` is what both raise; `execute` is the entry the DataFlux API and the generic runner
call.
"""
