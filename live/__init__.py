"""What a live run adds around the design: ``python3 main.py`` builds its parts from here.

The settings and flags, the posting thread, the GET and backup ticks, the console, signals and
shutdown, spill files and the reconciliation. Modules here use the design modules (api_layer,
redis_adapter, db, backup_data) and foundation/; nothing below imports them.
"""
