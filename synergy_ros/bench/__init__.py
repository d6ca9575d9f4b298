"""Benchmarks: runtime latency/memory per backend (``runtime_bench``) and model size/FLOPs/
latency per backbone (``model_bench``).
"""
