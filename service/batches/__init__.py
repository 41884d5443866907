"""The batch lifecycle: submit, lay out a pass, decide and create the next pass, merge results, retry, cancel,
finish. The only writer of `Pass` rows and of `Batch.status`; the routes and the worker steps call it.

Decisions are pure and live in `service/pipeline/`; this layer applies them through `service/store/`.
"""
