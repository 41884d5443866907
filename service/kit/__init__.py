"""Plumbing shared by every layer, with no dependency on any of them."""
