"""hookline: verified, durable webhook ingestion and a continuation pipeline."""

__version__ = "0.1.0"
