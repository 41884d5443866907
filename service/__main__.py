"""`python -m service migrate | openapi | worker`."""

from __future__ import annotations

from service.operator_cli import main

if __name__ == "__main__":
    main()
