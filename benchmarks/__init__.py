"""Benchmarks: each prints its figures, ends with one JSON line and appends it to results.jsonl."""
