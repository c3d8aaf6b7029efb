"""Fake servers the tests talk to over loopback sockets."""
