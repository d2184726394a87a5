#!/usr/bin/env python
"""Django's command-line utility for the gateway."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
    if sys.argv[1:2] == ["run"]:
        # One instance per data directory, checked before Django loads the gateway: a second
        # instance or a port in use leaves at once (gateway/instance.py), even on a busy
        # machine where the gateway's start-up takes a minute.
        from gateway.instance import claim_before_setup

        claim_before_setup(sys.argv[2:])
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
