"""TWM (Robine et al., ICLR 2023): Transformer-XL world model over categorical latents."""
from .agent import TWMAgent
from .config import TWMConfig

__all__ = ["TWMAgent", "TWMConfig"]
