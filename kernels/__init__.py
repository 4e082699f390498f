"""Triton kernels with a pure-PyTorch reference for each. Imports nothing else of this project."""
