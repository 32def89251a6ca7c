"""Reference applications: the echo and broadcast servers and the command-line client.

Run them with ``python -m rfc6455 echo|broadcast|client`` (see ``--help``).
"""
