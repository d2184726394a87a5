"""DataZen pipeline components (`PipelineDef`): row transforms run in order on each batch.

`validate_pipeline(defs)` when a job is saved; `compile_pipeline(defs).apply(batch)` per batch.
"""

from __future__ import annotations

from typing import Any

from jobs.pipeline import columns, dynamic, external, filtering, protect  # noqa: F401  (register)
from jobs.pipeline.base import Component, PipelineError, component_class, flag, known_names
from jobs.pipeline.sql import column_cache
from jobs.sync import spec
from jobs.systems.batch import Batch

__all__ = ["Pipeline", "PipelineError", "compile_pipeline", "parse_pipeline", "validate_pipeline"]

_NAME_KEYS = ("Name", "name", "ComponentType", "Type")
# Attribute of a pipeline's output batch that keeps its input rows alive (Pipeline.apply).
_HELD = "_pipeline_input_rows"


class Pipeline:
    """The enabled components of a PipelineDef, in order."""

    def __init__(self, steps: list[Component]) -> None:
        self.steps = steps

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def apply(self, batch: Batch) -> Batch:
        seen = [batch.rows]
        with column_cache():
            for step in self.steps:
                batch = step.apply(batch)
                if batch.rows is not seen[-1]:
                    seen.append(batch.rows)
        if len(seen) > 1:
            # The batch that comes out holds the row lists that went in (the reader's, and
            # any a step made and a later one replaced), so every row tuple read in this batch
            # is freed with it, all at once and in list order, as when there is no pipeline.
            # Freed in two waves instead (dropped rows when the reader fetches the next batch,
            # kept ones later), the small-object allocator hands out the next batch's memory
            # in a scattered order that compounds batch after batch and slows the reader
            # itself (docs/pipeline.md, Performance). The reader holds its list until its
            # next fetch anyway, so in the engine's read loop this adds no memory.
            seen.pop()
            vars(batch)[_HELD] = tuple(seen)
        return batch


def parse_pipeline(defs: Any) -> list[dict[str, Any]]:
    """PipelineDef as sent: a list, a JSON-encoded list (writers), one object, or None."""
    try:
        return spec.components(defs, "")
    except spec.SpecError as exc:
        raise PipelineError(str(exc)) from None


def _name(entry: dict[str, Any], step: int) -> str:
    for key in _NAME_KEYS:
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise PipelineError(f"Pipeline step {step} has no Name (the component type)")


def _build(defs: Any, *, for_run: bool) -> list[Component]:
    steps: list[Component] = []
    for step, entry in enumerate(parse_pipeline(defs), 1):
        name = _name(entry, step)
        cls = component_class(name)
        if cls is None:
            raise PipelineError(
                f"Pipeline step {step}: unknown component type '{name}' "
                f"(known: {', '.join(known_names())})"
            )
        if flag(entry, "Disabled"):
            continue
        component = cls(entry, step)
        if for_run and not cls.runnable:
            raise PipelineError(f"Pipeline step {step} ({cls.name}): {component.refusal()}")  # type: ignore[attr-defined]
        steps.append(component)
    return steps


def _filters_first(steps: list[Component]) -> list[Component]:
    """Move each SQL filter ahead of dynamic columns it does not read.

    The rows that come out are the same; the columns are then computed only for the rows
    the filter keeps, which is most of a reader pipeline's cost.
    """
    ordered = list(steps)
    for index in range(1, len(ordered)):
        at = index
        step = ordered[at]
        if not isinstance(step, filtering.DataFilter) or step.filter_type != filtering.SQL:
            continue
        while at > 0:
            before = ordered[at - 1]
            if not isinstance(before, dynamic.DataDynamicColumn):
                break
            if before.column_name.lower() in step.condition.names:
                break
            ordered[at - 1], ordered[at] = step, before
            at -= 1
    return ordered


def validate_pipeline(defs: Any) -> None:
    """Refuse a PipelineDef the gateway could not keep or run, naming the component.

    Unknown component types and bad settings of enabled ones (an invalid regular expression,
    a schema line that is not `<type> <name>`, an unknown Enzo function) are refused.
    DataRunSQL and DataSink are accepted so exports round-trip; running one fails the run.
    """
    _build(defs, for_run=False)


def compile_pipeline(defs: Any) -> Pipeline:
    """The runnable pipeline; raises PipelineError for anything that cannot run."""
    return Pipeline(_filters_first(_build(defs, for_run=True)))
