"""What can go wrong when the project brings up its own broker."""

from __future__ import annotations


class BrokerError(RuntimeError):
    """A broker could not be found, fetched, started or stopped."""


class MissingToolError(BrokerError):
    """Java or Maven is absent or too old; the message says what to install."""


class PortInUseError(BrokerError):
    """Another process holds a port that the local broker needs."""


class BrokerDiedError(BrokerError):
    """The JVM exited during start-up; the message carries the end of its log."""
