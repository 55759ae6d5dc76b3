"""Fixtures shared by the whole suite: the addresses of the real services the tests need."""

pytest_plugins = ["cadenza.ops.devservices.pytest_plugin"]
