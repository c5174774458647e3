"""REM: token-based world model with a POP-RetNet (Cohen et al., ICML 2024)."""
from agents.rem.agent import RemAgent
from agents.rem.config import RemConfig

__all__ = ["RemAgent", "RemConfig"]
