"""Benchmark peers: the same live run behind other HTTP stacks, for item 9's side-by-side figures.

They live here, not in the product: nothing under live/ or the top level imports them. Each is
served by uvicorn as its own process; benchmarks/http_api.py starts and measures them.
"""
