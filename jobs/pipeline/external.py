"""Components seen in real exports that need a database connection: DataRunSQL, DataSink.

They are accepted on save so exports round-trip; the gateway does not run them, so a
pipeline with one enabled fails its run with a message naming it (docs/pipeline.md).
"""

from __future__ import annotations

from typing import Any

from jobs.pipeline.base import Component, register
from jobs.systems.batch import Batch


class NotRunnable(Component):
    runnable = False
    purpose = ""

    def __init__(self, config: dict[str, Any], step: int) -> None:
        super().__init__(config, step)

    def apply(self, batch: Batch) -> Batch:
        raise self.fail(self.refusal())

    def refusal(self) -> str:
        return (
            f"the {self.name} component ({self.purpose}) is not supported by this gateway; "
            'disable it ("Disabled": true) or remove it from PipelineDef'
        )


@register
class DataRunSQL(NotRunnable):
    name = "DataRunSQL"
    aliases = ("RunSQL",)
    purpose = "runs SQL over @pipelinedata() on a database connection"


@register
class DataSink(NotRunnable):
    name = "DataSink"
    aliases = ("Sink",)
    purpose = "copies the batch into a table on a database connection"
