"""Evaluation harnesses beside the product: public rating files, and recovery of planted tastes."""
