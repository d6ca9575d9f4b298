"""Leaf utilities every layer may use: errors, atomic writes, geometry, label sets, RGB checks,
image-size parsing, machine descriptions and the model file format.

Nothing here imports another synergy_ros subpackage (enforced by test/test_layers.py).
"""
