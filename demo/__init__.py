"""`make demo`: the service on its embedded defaults, a PR-analysis workload, and what it cost."""
