"""docker-compose.yml, the Makefile, the Dockerfile and docs/operations.md start the fleet's
processes with gateway/fleet.py's commands; the compose file loads strictly and is valid."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway import fleet

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "tests" / "fixtures" / "compose" / "compose_spec.json"


class StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor` merges; keys given here override the anchor's, by design
        key = loader.construct_object(key_node)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_compose() -> dict[str, Any]:
    return yaml.load((ROOT / "docker-compose.yml").read_text(), Loader=StrictLoader)


def test_the_strict_loader_refuses_a_duplicate_key():
    # the defect the compose file had: a key pasted twice into one block
    text = "web:\n  depends_on:\n    migrate: {condition: a}\n    migrate: {condition: b}\n"
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'migrate'"):
        yaml.load(text, Loader=StrictLoader)


def test_compose_file_loads_and_matches_the_compose_specification():
    compose = load_compose()
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft201909Validator(schema).validate(compose)


def test_every_gateway_service_waits_for_the_migration_and_its_databases():
    services = load_compose()["services"]
    for name in ("web", "worker", "scheduler"):
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"] == {"condition": "service_healthy"}, name
        assert "redis" in depends, name


def test_compose_runs_each_process_through_gateway_fleet():
    services = load_compose()["services"]
    for name in fleet.PROCESSES:
        assert services[name]["command"] == ["python", "-m", "gateway.fleet", name]


def test_makefile_targets_run_the_same_commands():
    makefile = (ROOT / "Makefile").read_text()
    for name in fleet.PROCESSES:
        recipe = re.search(rf"^fleet-{name}:.*\n\t(.+)$", makefile, re.MULTILINE)
        assert recipe is not None, f"no fleet-{name} target"
        assert recipe.group(1) == f"$(BIN)/python -m gateway.fleet {name}"


def test_the_image_starts_the_web_through_gateway_fleet():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["python", "-m", "gateway.fleet", "web"]' in dockerfile
    assert "GATEWAY_HOST=0.0.0.0" in dockerfile


def test_docs_show_the_commands_gateway_fleet_runs():
    docs = (ROOT / "docs" / "operations.md").read_text()
    env: dict[str, str] = {}
    for name in ("web", "scheduler"):
        (command,) = fleet.commands(name, env)
        assert f"| `{name}` | `{' '.join(command)}` |" in docs
    (worker,) = fleet.commands("worker", env, pid=0)
    shown = " ".join(worker).replace("gateway-0@", "gateway-PID@").rsplit("@", 1)[0]
    assert f"| `worker` | `{shown}@HOST` |" in docs
    migrate = ", then ".join(f"`{' '.join(step)}`" for step in fleet.commands("migrate", env))
    assert f"| `migrate` | {migrate} |" in docs


def test_a_worker_consumes_both_queues_under_a_node_name_of_its_own():
    env = {"CELERY_TASK_DEFAULT_QUEUE": "gateway", "DATAFLUX_QUEUE": "flows"}
    (first,) = fleet.commands("worker", env, pid=101)
    (second,) = fleet.commands("worker", env, pid=102)
    assert first[first.index("-Q") + 1] == "gateway,flows"
    assert first[first.index("-n") + 1] != second[second.index("-n") + 1]


def test_an_unknown_process_is_refused_with_the_known_ones():
    assert fleet.main(["webserver"]) == 2
    with pytest.raises(ValueError, match="one of: migrate, web, worker, scheduler"):
        fleet.commands("webserver", {})
