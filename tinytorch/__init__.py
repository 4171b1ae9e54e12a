"""TinyTorch: a NumPy deep-learning framework built module by module.

The package is generated from `modules/*/*_dev.py` by `tito export`; edit those files.
"""

__version__ = "0.1.0"
