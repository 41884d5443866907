"""Read models: what the API answers, the status page draws and webhook events carry, built from the store.

Shared by `api/`, `ui/` and the lifecycle layer (a terminal batch's webhook event is its summary), so none of
them needs another's modules."""
