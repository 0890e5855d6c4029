"""Benchmarks (not tests): search latency, indexing speed and HTTP throughput."""
