"""Whether a run records its agent panes, and up to what size: flags, then environment, then configuration.

    record = true              # .pairloop.toml (or [tool.pairloop]): each agent pane into <role>.cast
    record_limit_mb = 50       # per recording; at the limit it stops, and the ledger says so

Environment: PAIRLOOP_RECORD (0/false/no/off turns it off), PAIRLOOP_RECORD_LIMIT_MB."""

from __future__ import annotations

from typing import Any

from bridge import RecordingSettings
from pairloop.errors import UsageProblem

OFF = ("0", "false", "no", "off")


def recording_settings(config: dict[str, Any], env: dict[str, str], record: bool | None = None,
                       limit_mb: float | None = None) -> RecordingSettings:
    default = RecordingSettings()
    if record is None:
        if env.get("PAIRLOOP_RECORD"):
            record = env["PAIRLOOP_RECORD"].strip().lower() not in OFF
        else:
            value = config.get("record", default.enabled)
            if not isinstance(value, bool):
                raise UsageProblem("record in the configuration must be true or false")
            record = value
    if limit_mb is None:
        raw: Any = env.get("PAIRLOOP_RECORD_LIMIT_MB") or config.get("record_limit_mb", default.limit_mb)
        try:
            limit_mb = float(raw)
        except (TypeError, ValueError):
            raise UsageProblem(f"record_limit_mb must be a number of megabytes, not {raw!r}") from None
    if limit_mb <= 0:
        raise UsageProblem("record_limit_mb must be more than 0")
    return RecordingSettings(enabled=record, limit_mb=limit_mb)
