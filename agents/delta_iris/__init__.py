"""Δ-IRIS (Micheli, Alonso, Fleuret, ICML 2024): context-aware Δ-tokens, I-token world model, CNN-LSTM actor-critic."""
from agents.delta_iris.agent import DeltaIrisAgent
from agents.delta_iris.config import PROFILES, DeltaIrisConfig

__all__ = ["DeltaIrisAgent", "DeltaIrisConfig", "PROFILES"]
