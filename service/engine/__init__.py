"""The scoring engine: pure state, windows and scoring, driven by events and a clock."""

from service.engine.engine import AccountScore, Engine, EngineConfig, Outcome

__all__ = ["AccountScore", "Engine", "EngineConfig", "Outcome"]
