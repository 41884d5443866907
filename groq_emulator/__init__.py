"""A local stand-in for Groq's Files + Batches API, for tests and demos.

Point the official SDK at it: ``AsyncGroq(base_url="http://127.0.0.1:8090", api_key="x")``, or in
process: ``AsyncGroq(base_url="http://emulator", api_key="x",
http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=create_emulator_app(cfg))))``.
"""

from groq_emulator.app import create_emulator_app
from groq_emulator.clock import Clock, ManualClock, ScaledClock
from groq_emulator.config import EmulatorConfig, Faults, ModelBehaviour
from groq_emulator.state import Emulator, RequestRecord

__all__ = [
    "Clock",
    "Emulator",
    "EmulatorConfig",
    "Faults",
    "ManualClock",
    "ModelBehaviour",
    "RequestRecord",
    "ScaledClock",
    "create_emulator_app",
]
