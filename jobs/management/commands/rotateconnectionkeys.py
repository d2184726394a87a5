"""Re-encrypt every stored connection string under the first of GATEWAY_FERNET_KEYS."""

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from jobs.crypto import rotate_secret
from jobs.models import ConnectionString


class Command(BaseCommand):
    help = "Re-encrypt connection strings with the current (first) Fernet key."

    def handle(self, *args: Any, **options: Any) -> None:
        count = 0
        with transaction.atomic():
            for connection in ConnectionString.objects.select_for_update():
                connection.encrypted_value = rotate_secret(connection.encrypted_value)
                connection.save(update_fields=["encrypted_value"])
                count += 1
        self.stdout.write(f"{count} connection string(s) re-encrypted with the current key.")
