"""``python -m openai_emulator --port 8091 [--host 127.0.0.1] [--seed N] [--time-scale F]``."""

from __future__ import annotations

import argparse

import uvicorn

from openai_emulator import EmulatorConfig, create_emulator_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m openai_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="real seconds per emulated second: 0.01 runs a 100 s schedule in 1 s",
    )
    parser.add_argument("--validating-seconds", type=float, default=5.0)
    parser.add_argument("--processing-seconds", type=float, default=30.0)
    parser.add_argument("--finalizing-seconds", type=float, default=5.0)
    parser.add_argument("--cancel-seconds", type=float, default=30.0)
    parser.add_argument("--api-key", default=None, help="accept only this bearer token (default: any)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    config = EmulatorConfig(
        seed=args.seed,
        time_scale=args.time_scale,
        validating_seconds=args.validating_seconds,
        processing_seconds=args.processing_seconds,
        finalizing_seconds=args.finalizing_seconds,
        cancel_seconds=args.cancel_seconds,
        api_key=args.api_key,
    )
    print(f"OpenAI emulator on http://{args.host}:{args.port}/v1 (seed={args.seed}, time_scale={args.time_scale})")
    uvicorn.run(create_emulator_app(config), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
