"""hookline: verified, durable webhook ingestion and a continuation pipeline.

The handler API, importable from the top of the package::

    from hookline import handler, Context, Event, NonRetryableError
"""

from hookline.context import Context
from hookline.errors import NonRetryableError
from hookline.pipeline import Event, handler

__version__ = "0.1.0"

__all__ = ["Context", "Event", "NonRetryableError", "__version__", "handler"]
