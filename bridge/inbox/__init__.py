"""Messages in: the outbox is scanned (watchdog, polling fallback) and each file claimed once recorded."""
