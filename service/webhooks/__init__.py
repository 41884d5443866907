"""Sending webhooks to `callback_url`: Standard Webhooks signing, the SSRF guard, one HTTP delivery attempt."""
