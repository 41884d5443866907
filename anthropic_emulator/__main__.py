"""``python -m anthropic_emulator --port 8092 [--host 127.0.0.1] [--seed N] [--time-scale F]``."""

from __future__ import annotations

import argparse

import uvicorn

from anthropic_emulator import EmulatorConfig, create_emulator_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m anthropic_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8092)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="real seconds per emulated second: 0.01 runs a 100 s schedule in 1 s",
    )
    parser.add_argument("--processing-seconds", type=float, default=60.0)
    parser.add_argument("--cancel-seconds", type=float, default=30.0)
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    config = EmulatorConfig(
        seed=args.seed,
        time_scale=args.time_scale,
        processing_seconds=args.processing_seconds,
        cancel_seconds=args.cancel_seconds,
        api_key=args.api_key,
    )
    print(f"Anthropic emulator on http://{args.host}:{args.port} (seed={args.seed}, time_scale={args.time_scale})")
    uvicorn.run(create_emulator_app(config), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
