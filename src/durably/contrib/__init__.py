"""Integrations with other tools, each an optional extra: ``durably.contrib.prometheus``
(``durably[prometheus]``), ``durably.contrib.otel`` (``durably[otel]``)."""
