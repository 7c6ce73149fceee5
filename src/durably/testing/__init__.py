"""Tools for testing with durably: the store contract (:mod:`durably.testing.contract`)."""
