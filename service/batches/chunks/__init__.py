"""A chunk's life, step by step: a pass is laid out into chunks (`batches/layout.py`); each chunk is then sent
(`sending.py`, with its budget reservation, `budget.py`), polled (`polling.py`), ingested (`ingesting.py`) and
cleaned up on the provider (`cleanup.py`); a cancelled batch's chunks are cancelled (`cancelling.py`), and a step
the provider failed is deferred (`deferring.py`). Every write is fenced on the chunk's state and the worker's
lease (`store/chunks.update_held`); the workers only claim a due chunk and call its step.
"""
