"""The fuzz suite of rfc6455: hypothesis properties and atheris harnesses.

Run it all with ``python -m fuzz --minutes N`` (needs the ``fuzz`` extra).
"""
