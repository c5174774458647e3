#!/bin/bash
# Stop the single-node test cluster started by slurm/ci_up.sh, in reverse start order, each daemon
# by its own pid file (never by process name). Always exits 0, so CI can call it unconditionally.
set -u

PID_FILES=(
  /run/slurm/slurmd.pid
  /run/slurm/slurmctld.pid
  /run/slurm/slurmdbd.pid
  /run/mysqld/mariadbd.wmbench.pid
  /run/munge/munged.pid
)

for f in "${PID_FILES[@]}"; do
  [[ -s $f ]] || continue
  pid=$(cat "$f" 2>/dev/null) || continue
  [[ $pid =~ ^[0-9]+$ ]] || { echo "[ci_down] $f holds '$pid', not a pid: skipped"; continue; }
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$f" 2>/dev/null
    continue
  fi
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "[ci_down] $(basename "$f" .pid) pid=$pid ignored SIGTERM for 20 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null
  else
    echo "[ci_down] stopped $(basename "$f" .pid) pid=$pid"
  fi
  [[ $f == /run/mysqld/mariadbd.wmbench.pid ]] && rm -f "$f" 2>/dev/null
done
exit 0
