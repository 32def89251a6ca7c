"""Autobahn TestSuite conformance (via kosoku): runner, echo peers, pytest entry."""
