"""A simulated shop: synthetic users, items and behaviour logs with planted tastes, at demo
scale (``synthetic``) or benchmark scale (``bulk``). Tests, the demo, benchmarks and the
evaluation harnesses use it; the product never imports it."""
