"""Blocks shared by two or more agents: returns, twohot, vq, transformer, actor_critic, lpips, optim."""
