"""Compatibility with the original cc_executor client API (``cc_executor.client.cc_execute``)."""
