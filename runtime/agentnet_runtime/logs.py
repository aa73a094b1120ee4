"""How every agentnet process logs: one line per record on stdout, JSON by default, text when asked.

A JSON line carries `time` (ISO-8601, UTC), `level`, `logger`, `message`, what the process is
(`network` and `component`, or `agents` for an agents pod), the record's own fields (`extra=`),
and a traceback as the one field `exception`. The level and format come from LOG_LEVEL and
LOG_FORMAT (the operator sets them on every pod from `spec.logging`); a command's
--log-level/--log-format flag wins over them. Agents, components, `agentnet up` and the
operator (kopf's loggers included) all call `setup` once, before they log.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Callable, Mapping

import click

LEVEL_VARIABLE, FORMAT_VARIABLE = "LOG_LEVEL", "LOG_FORMAT"
LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("json", "text")
DEFAULT_LEVEL, DEFAULT_FORMAT = "info", "json"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from `extra=` and is written as a field,
# except what kopf's per-object loggers add for themselves (its settings, whether to post an Event).
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_NOT_FIELDS = _RECORD_ATTRIBUTES | {"settings", "k8s_skip", "k8s_ref"}
KOPF_OBJECT = "k8s_ref"  # kopf's reference to the object a record is about: the field `object`, as kopf's own JSON has it


class LogSettingError(ValueError):
    """LOG_LEVEL or LOG_FORMAT (or its flag) holds a value that is not allowed; the message names both."""


@dataclass(frozen=True)
class LogSettings:
    level: str = DEFAULT_LEVEL
    format: str = DEFAULT_FORMAT

    @classmethod
    def resolve(cls, level: str | None = None, format: str | None = None, env: Mapping[str, str] = os.environ,
                default_level: str = DEFAULT_LEVEL) -> "LogSettings":
        """Flags first, then the environment, then the defaults; a bad value names its variable and the allowed ones."""
        return cls(
            level=_choice(LEVEL_VARIABLE, level if level is not None else env.get(LEVEL_VARIABLE, default_level), LEVELS),
            format=_choice(FORMAT_VARIABLE, format if format is not None else env.get(FORMAT_VARIABLE, DEFAULT_FORMAT), FORMATS),
        )


def _choice(variable: str, value: str, allowed: tuple[str, ...]) -> str:
    chosen = value.strip().lower()
    if chosen not in allowed:
        raise LogSettingError(f"{variable}={value!r} is not allowed: use one of {', '.join(allowed)}")
    return chosen


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line; `context` (what the process is) goes into every one."""

    def __init__(self, context: Mapping[str, Any] | None = None):
        super().__init__()
        self.context = dict(context or {})

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **self.context,
        }
        if hasattr(record, KOPF_OBJECT):
            line["object"] = getattr(record, KOPF_OBJECT)
        for key, value in vars(record).items():
            if key not in _NOT_FIELDS and not key.startswith("_"):
                line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # The json module, not orjson: a field may hold any int; ASCII only, so no character in a message
        # (U+2028, say) is a line break to a reader; a NaN or infinity in a field is written as its repr.
        try:
            return json.dumps(line, default=repr, separators=(",", ":"), allow_nan=False)
        except ValueError:
            return json.dumps({key: value if isinstance(value, str) else repr(value) for key, value in line.items()},
                              separators=(",", ":"))  # fmt: skip


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [what the process is]: [namespace/name of kopf's object] message`."""

    def __init__(self, context: Mapping[str, Any] | None = None):
        super().__init__(TEXT_FORMAT)  # names asctime, so format() sets record.asctime
        self.process = " [" + " ".join(f"{key}={value}" for key, value in context.items()) + "]" if context else ""

    def formatMessage(self, record: logging.LogRecord) -> str:
        ref = getattr(record, KOPF_OBJECT, None)
        about = ""
        if isinstance(ref, dict):
            about = "[" + "/".join(str(part) for part in (ref.get("namespace"), ref.get("name")) if part) + "] "
        return f"{record.asctime} {record.levelname} {record.name}{self.process}: {about}{record.message}"


FORMATTERS: dict[str, Callable[[Mapping[str, Any] | None], logging.Formatter]] = {"json": JsonFormatter, "text": TextFormatter}


def setup(settings: LogSettings, **context: Any) -> logging.Handler:
    """Send every logger's records (the root's handlers replaced) to stdout in `settings`' format and level.
    `context` says what the process is, e.g. network="demo", component="crdt-service"."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(FORMATTERS[settings.format]({key: value for key, value in context.items() if value is not None}))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
    logging.captureWarnings(True)  # warnings.warn lines too, in the same format
    return handler


def options(default_level: str = DEFAULT_LEVEL):
    """The --log-level and --log-format options of a command (default: $LOG_LEVEL, $LOG_FORMAT)."""

    def decorate(command):
        command = click.option("--log-format", type=click.Choice(FORMATS, case_sensitive=False),
                               help=f"json lines or text [default: ${FORMAT_VARIABLE}, then {DEFAULT_FORMAT}]")(command)  # fmt: skip
        return click.option("--log-level", type=click.Choice(LEVELS, case_sensitive=False),
                            help=f"[default: ${LEVEL_VARIABLE}, then {default_level}]")(command)  # fmt: skip

    return decorate


def from_flags(log_level: str | None, log_format: str | None, default_level: str = DEFAULT_LEVEL) -> LogSettings:
    """A command's settings: its flags over the environment; a bad LOG_LEVEL/LOG_FORMAT ends it with the reason.
    Called first thing, so that a bad value is what the command says, whatever else is wrong."""
    try:
        return LogSettings.resolve(log_level, log_format, default_level=default_level)
    except LogSettingError as error:
        raise click.ClickException(str(error)) from None
