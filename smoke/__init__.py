"""Herald's smoke test: the README's flow against a running Herald, local or in Azure.

It is a client of the HTTP API like any other and imports nothing from Herald, so a passing run
proves the deployed API rather than the code in the tree. Run it with ``python -m smoke --help``.
"""
