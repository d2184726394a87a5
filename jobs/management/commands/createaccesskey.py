"""createaccesskey NAME [--scope all|agent|jobs] [--read-only] [--can-decrypt]"""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from jobs.models import AccessKey, AccessScope


class Command(BaseCommand):
    help = "Create a DataZen shared access key and print it (the last line) — it is not stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--scope", choices=AccessScope.values, default=AccessScope.ALL)
        parser.add_argument("--read-only", action="store_true", help="GET calls only")
        parser.add_argument(
            "--can-decrypt", action="store_true", help="may use /connections?decrypt=1"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        key, raw = AccessKey.generate(
            options["name"],
            scope=options["scope"],
            read_only=options["read_only"],
            can_decrypt=options["can_decrypt"],
        )
        flags = [
            key.scope,
            *(["read-only"] if key.read_only else []),
            *(["can decrypt"] if key.can_decrypt else []),
        ]
        self.stderr.write(
            f"Access key '{key.name}' created ({', '.join(flags)}). "
            "Keep it now: only its hash is stored."
        )
        self.stdout.write(raw)
