"""residency: a Faust topology that enforces data residency on Kafka."""

__version__ = "0.1.0"
