"""Launching suite cells: local, debug and SLURM executors through submitit, cluster profiles."""
