"""Print the runtime dependencies of pyproject.toml as a requirements file, refusing any that is not pinned
with ==, so an image is built from exactly the versions the tests ran with.

    python docker/pinned_requirements.py pyproject.toml > requirements.txt
"""

from __future__ import annotations

import re
import sys
import tomllib

PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!_-]+$")


def pinned_requirements(pyproject: str) -> list[str]:
    with open(pyproject, "rb") as handle:
        dependencies: list[str] = tomllib.load(handle)["project"]["dependencies"]
    loose = [dependency for dependency in dependencies if not PINNED.match(dependency.replace(" ", ""))]
    if loose:
        raise SystemExit(f"{pyproject}: pin these with ==: {', '.join(loose)}")
    return dependencies


if __name__ == "__main__":
    print("\n".join(pinned_requirements(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml")))
