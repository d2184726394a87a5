"""First start: an access key and an admin user when there are none, printed once."""

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from jobs.agent import start_new_boot
from jobs.definitions import purge_stale_dynamic_jobs
from jobs.models import AccessKey, AccessScope


class Command(BaseCommand):
    help = (
        "Start a new boot (dynamic jobs of the last one are dropped) and create the first "
        "access key and admin user if none exist, printing them once."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        # On a fleet this runs once per deployment, beside migrate: that is the restart
        # after which DataZen clients expect their dynamic jobs gone.
        start_new_boot()
        purge_stale_dynamic_jobs()
        if not AccessKey.objects.exists():
            _, raw = AccessKey.generate("bootstrap", scope=AccessScope.ALL, can_decrypt=True)
            self.stdout.write(f"DataZen access key (all APIs, may decrypt): {raw}")
            self.stdout.write(
                f"  try: curl -H 'Authorization: SharedKey {raw}' "
                f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT', '9559')}/version"
            )
        user_model = get_user_model()
        if not user_model.objects.filter(is_superuser=True).exists():
            username = os.environ.get("GATEWAY_ADMIN_USER", "admin")
            password = os.environ.get("GATEWAY_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            user_model.objects.create_superuser(username=username, email="", password=password)
            self.stdout.write(f"Admin console user: {username} / {password}")
            self.stdout.write(
                "  (admin console and DataFlux HTTP Basic; change the password in /admin/)"
            )
