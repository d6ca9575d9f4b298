"""Offline evaluation of recorded bags: the evaluator loop, metric accumulators, the output
writers, the metrics themselves, reports and bounded-memory streaming helpers.
"""
