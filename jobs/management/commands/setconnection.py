"""setconnection KEY --system SYSTEM --type DB|Drive|HTTP|Messaging --value VALUE"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.models import ConnectionString, ConnectionType


class Command(BaseCommand):
    help = "Create or replace a connection string (stored encrypted)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key")
        parser.add_argument("--system", required=True, help="e.g. SQLite, PostgreSQL, MySQL, HTTP")
        parser.add_argument("--type", required=True, choices=ConnectionType.values, dest="ctype")
        parser.add_argument("--value", required=True, help="the connection string itself")
        parser.add_argument("--display-name", default="")
        parser.add_argument("--display-value", default="", help="a non-secret hint shown in lists")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["ctype"] == ConnectionType.HTTP:
            # Refused here, naming the member, rather than at the first run that uses it.
            from jobs.sync.spec import SpecError
            from jobs.systems.http.connection import parse_connection

            try:
                http = parse_connection(options["value"])
            except SpecError as exc:
                raise CommandError(str(exc)) from None
            options["display_value"] = options["display_value"] or http.describe()
        connection = ConnectionString.objects.filter(key=options["key"]).first()
        created = connection is None
        connection = connection or ConnectionString(key=options["key"])
        connection.system = options["system"]
        connection.connection_type = options["ctype"]
        connection.display_name = options["display_name"] or options["system"]
        connection.display_value = options["display_value"]
        connection.value = options["value"]
        connection.save()
        self.stdout.write(f"Connection '{connection.key}' {'created' if created else 'replaced'}.")
