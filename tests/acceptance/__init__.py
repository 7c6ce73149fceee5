"""Acceptance tests: real worker processes, killed with SIGKILL and recovered."""
