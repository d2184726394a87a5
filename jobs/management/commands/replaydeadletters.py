"""replaydeadletters FILE: send an HTTP writer's dead-lettered requests again."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.systems.http.deadletter import DeadLetterError, dead_letter_file, replay


class Command(BaseCommand):
    help = (
        "Send the requests of an HTTP writer's dead-letter file again; the ones delivered "
        "leave the file, the ones still failing stay with their new error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the .jsonl file, absolute or under the data directory")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = replay(dead_letter_file(options["file"]))
        except DeadLetterError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{result.delivered} request(s) delivered ({result.rows_delivered} row(s)), "
            f"{result.still_failing} still failing."
        )
        if result.still_failing:
            raise CommandError(
                f"{result.still_failing} request(s) still failing: kept in the file."
            )
