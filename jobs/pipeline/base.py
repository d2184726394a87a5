"""What every pipeline component shares: its configuration, the registry of names, helpers."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from jobs.sync import spec
from jobs.systems.batch import Batch


class PipelineError(ValueError):
    """A PipelineDef that cannot be saved or run; the message names the component."""


class Component:
    """One PipelineDef entry compiled for running. Subclasses read their vendor fields."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    # False for components the gateway accepts on save (round trip) but cannot run.
    runnable: ClassVar[bool] = True

    def __init__(self, config: dict[str, Any], step: int) -> None:
        self.config = config
        self.step = step

    def apply(self, batch: Batch) -> Batch:
        raise NotImplementedError

    def fail(self, message: str) -> PipelineError:
        return PipelineError(f"Pipeline step {self.step} ({self.name}): {message}")


_REGISTRY: dict[str, type[Component]] = {}


def normalized(name: str) -> str:
    """Component names are matched without case, spaces, dashes or underscores."""
    return re.sub(r"[\s_\-]", "", name).lower()


def register(cls: type[Component]) -> type[Component]:
    for name in (cls.name, *cls.aliases):
        _REGISTRY[normalized(name)] = cls
    return cls


def component_class(name: str) -> type[Component] | None:
    return _REGISTRY.get(normalized(name))


def known_names() -> list[str]:
    return sorted({cls.name for cls in _REGISTRY.values()})


def flag(config: dict[str, Any], key: str, default: bool = False) -> bool:
    """A vendor boolean setting of a component, read by the definitions' one rule."""
    try:
        return spec.flag(config.get(key), key, default=default)
    except spec.SpecError as exc:
        raise PipelineError(str(exc)) from None


def name_list(value: Any) -> list[str]:
    """Column names given as a list or a comma/semicolon/newline separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        items: list[Any] = re.split(r"[,;\n]", value)
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        items = [value]
    return [str(item).strip().strip('[]"`') for item in items if str(item).strip()]


def column_position(batch: Batch, reference: str | int) -> int:
    """A column named `reference`, or else at position `reference` ("0" is the first)."""
    text = str(reference).strip()
    try:
        return batch.index(text)
    except KeyError:
        pass
    if text.isdigit() and int(text) < len(batch.columns):
        return int(text)
    raise KeyError(text)


def first_of(config: dict[str, Any], *keys: str, default: Any = None) -> Any:
    """The first of `keys` present in the config (vendor names vary between versions)."""
    for key in keys:
        if key in config and config[key] is not None:
            return config[key]
    return default
