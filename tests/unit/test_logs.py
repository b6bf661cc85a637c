"""Worker logs are JSON lines with coordinates, and never carry an exception's message."""

from __future__ import annotations

import logging

import orjson

from pipeline.logs import JsonFormatter

SECRET = "4111111111111111"


def _record(msg: str, exc: BaseException | None = None, **extra: object) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    record = logging.LogRecord("residency", logging.ERROR, __file__, 1, msg, (), exc_info)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_when_a_record_is_logged_then_it_is_one_json_line_with_coordinates():
    line = JsonFormatter().format(_record("screened batch", topic="eu.raw.payments", partition=2, offset=7,
                                          event_id="e-1", payload=SECRET))
    doc = orjson.loads(line)
    assert "\n" not in line
    assert doc["msg"] == "screened batch" and doc["partition"] == 2 and doc["event_id"] == "e-1"
    assert SECRET not in line, "fields outside the allowlist are dropped"


def test_when_an_exception_is_logged_then_its_message_is_left_out():
    try:
        raise ValueError(f"bad value {SECRET}")
    except ValueError as exc:
        line = JsonFormatter().format(_record("failed", exc))
    doc = orjson.loads(line)
    assert doc["exc_type"] == "ValueError" and doc["exc_frames"]
    assert SECRET not in line


def test_when_a_message_has_newlines_then_the_line_stays_one_line():
    line = JsonFormatter().format(_record("a\nb\x1b[31m"))
    assert "\n" not in line and orjson.loads(line)["msg"] == "a\nb\x1b[31m"
