"""Herald's benchmarks: each scenario measured beside the raw limit of the same machine, in one run.

``python -m bench [--quick] [--only NAME ...]``; see docs/performance.md.
"""
