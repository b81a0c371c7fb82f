"""digitnet: a handwritten-digit classifier whose network is written from scratch in NumPy."""

__version__ = "0.1.0"
