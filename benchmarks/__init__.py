"""Reproducible benchmarks that write JSON, markdown and PNG under results/."""
