"""ttH-adv: a columnar ttH(H->yy) analysis with a mass-decorrelated classifier.

Importing this package is cheap: it never imports TensorFlow, and heavy modules (coffea,
onnxruntime, dask) are imported by the submodules that need them.
"""

__version__ = "0.1.0"
