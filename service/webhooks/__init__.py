"""Webhook events to `callback_url`: Standard Webhooks signing, the SSRF guard, events and delivery."""
