"""replaydeadletters FILE: send dead letters again — an HTTP writer's requests to its service,
a consumer's messages to the queue, topic, subject or stream it reads."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.systems.deadletters import DeadLetterError, dead_letter_file
from jobs.systems.http.deadletter import replay as replay_requests
from jobs.systems.messaging.replay import is_message_file, replay_messages


class Command(BaseCommand):
    help = (
        "Send the entries of a dead-letter file again: an HTTP writer's requests "
        "(deadletter/…/<writer>.jsonl) or a consumer's messages "
        "(deadletter/<JobKey>.messages.jsonl). Those delivered leave the file; those still "
        "failing stay, with their new error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the .jsonl file, absolute or under the data directory")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            path = dead_letter_file(options["file"])
            if is_message_file(path):
                result = replay_messages(path)
                what, unit = "message(s) published", ""
            else:
                result = replay_requests(path)
                what, unit = "request(s) delivered", f" ({result.rows_delivered} row(s))"
        except DeadLetterError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{result.delivered} {what}{unit}, {result.still_failing} still failing.")
        if result.still_failing:
            raise CommandError(f"{result.still_failing} still failing: kept in the file.")
