#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    from config.datadir import refusal

    # Before Django: the settings would create a key and an empty database in a wrong data directory.
    reason = refusal(sys.argv)
    if reason:
        sys.stderr.write(reason + "\n")
        sys.exit(2)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
