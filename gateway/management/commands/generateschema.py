"""`manage.py generateschema`: the OpenAPI 3 document of a vendor API, as the gateway serves it.

It replaces rest_framework's command of the same name, which described the views generically
(bodies as `{}`) and crashed without its optional dependencies; this one writes what
/api/schema/<vendor>/ serves, and can check it against the OpenAPI 3 specification.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.openapi import VENDORS, build_schema


class Command(BaseCommand):
    help = "Write the OpenAPI 3 document of the DataZen or DataFlux API (YAML or JSON)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--api", choices=VENDORS, default="datazen", help="which vendor API")
        parser.add_argument("--format", choices=("yaml", "json"), default="yaml")
        parser.add_argument("--file", help="write here instead of standard output")
        parser.add_argument(
            "--validate", action="store_true", help="fail unless the document is valid OpenAPI 3"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        import dataflux.schema  # noqa: F401  (the descriptions attach to the views on import)
        import datazen.schema  # noqa: F401

        document = build_schema(options["api"])
        if options["validate"]:
            from drf_spectacular.validation import validate_schema

            try:
                validate_schema(document)
            except Exception as exc:  # jsonschema's ValidationError, whatever its path
                raise CommandError(f"The {options['api']} document is not valid: {exc}") from exc
        if options["format"] == "json":
            text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        else:
            text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
        if options["file"]:
            with open(options["file"], "w", encoding="utf-8") as out:
                out.write(text)
        else:
            self.stdout.write(text, ending="")
