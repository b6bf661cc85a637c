"""A real single-node Apache Kafka (KRaft) on loopback, run by the project itself.

``pipeline.broker`` is the public face; the modules here are its parts:
``tools`` finds Java and Maven, ``artifacts`` fetches the broker jars once,
``config`` writes ``server.properties``, ``process`` owns the JVM process,
``probe`` asks the broker whether it is ready, ``local`` ties them into
:class:`LocalKafka` and ``choice`` picks which broker a run should use.
"""
