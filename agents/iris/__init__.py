"""IRIS (Micheli et al., ICLR 2023): VQ tokenizer, GPT world model, CNN+LSTM actor-critic in imagination."""
from agents.iris.agent import IrisAgent
from agents.iris.config import IrisConfig

__all__ = ["IrisAgent", "IrisConfig"]
