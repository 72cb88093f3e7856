"""The system under test: a FastAPI API ("connect a source, then backfill it") and its arq worker."""
