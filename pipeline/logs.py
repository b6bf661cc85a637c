"""Structured logs: one JSON object per line, with coordinates and event ids, never payloads.

Exception messages are left out on purpose: a library's message can quote the input it choked on.
A failure is logged by its type and the frames it passed through, which is what an operator needs.
"""

from __future__ import annotations

import logging
import logging.config
import traceback
from datetime import UTC, datetime
from typing import Any

import orjson

# Fields a log call may attach with ``extra=``; anything else is dropped, so a stray payload in an
# ``extra`` dict never reaches the log either.
EXTRA_FIELDS = ("topic", "partition", "offset", "seq", "event_id", "dataset", "decision", "agent", "error",
                "next_seq", "events", "entries", "stage", "reason", "region", "policy_hash", "datasets",
                "broker")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            kind, _, tb = record.exc_info
            line["exc_type"] = kind.__name__
            line["exc_frames"] = [f"{f.filename}:{f.lineno}:{f.name}" for f in traceback.extract_tb(tb)][-12:]
        return orjson.dumps(line, default=str).decode()


def logging_config(level: str, fmt: str = "json") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the worker: JSON lines (or plain text) on stderr."""
    formatter = {"()": "pipeline.logs.JsonFormatter"} if fmt == "json" else {
        "format": "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default",
                                 "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["default"]},
    }


def configure_logging(level: str, fmt: str = "json") -> None:
    """Send every logger (ours, Faust's, aiokafka's, and ``warnings``) through one handler, from the start.

    Called before anything else in the worker, so start-up lines are as parseable as the rest.
    """
    logging.config.dictConfig(logging_config(level, fmt))
    logging.captureWarnings(True)
