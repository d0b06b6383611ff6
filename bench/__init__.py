"""Side-by-side benchmarks: each `bench_*.py` prints our figure, a reference tool's figure and the ratio."""
