"""digitnet: a handwritten-digit classifier whose network is written from scratch in NumPy.

`digitnet.load_model()` gives a Model whose `predict(images)` reads files, Pillow images or
arrays. The API is imported on first use, so `import digitnet` itself stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Model", "Prediction", "__version__", "load_model"]

if TYPE_CHECKING:
    from digitnet.api import Model, Prediction, load_model


def __getattr__(name: str) -> Any:
    if name in ("Model", "Prediction", "load_model"):
        from digitnet import api

        return getattr(api, name)
    raise AttributeError(f"module 'digitnet' has no attribute {name!r}")
