"""Side-by-side measurements of TinyTorch (and PyTorch, where installed); `python -m benchmarks` runs them all.

Each `bench_*.py` also runs alone (`python benchmarks/bench_prune.py`); `run_all` writes
`benchmarks/RESULTS.md`. They are measurements, not tests: nothing here runs under pytest.
"""
