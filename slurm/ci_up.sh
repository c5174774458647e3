#!/bin/bash
# Bring up a single-node SLURM cluster with accounting on this machine (the CI test cluster).
#
#   sudo slurm/ci_up.sh          # run as root; safe to run again while the cluster is up
#
# Installs the Debian packages if any is missing, writes /etc/slurm/{slurm,slurmdbd}.conf, and
# starts munged, mariadbd, slurmdbd, slurmctld and slurmd (each only if its pid file does not
# point at a live process). Prints the seconds spent installing and starting, and exits non-zero
# unless the node ends up idle (or serving jobs: mixed/allocated, when run again under load).
# Stop everything with slurm/ci_down.sh. Profile for jobs on this cluster: slurm/ci.yaml.
set -euo pipefail

CLUSTER=${WMBENCH_SLURM_CLUSTER:-ci}           # ClusterName and sacctmgr cluster
PARTITION=${WMBENCH_SLURM_PARTITION:-debug}    # the only partition (slurm/ci.yaml uses it)
DB_PASS=${WMBENCH_SLURM_DB_PASS:-slurmdbpass}  # local-only MariaDB password of the slurm user
WAIT_S=${WMBENCH_SLURM_WAIT_S:-60}             # how long to wait for each daemon / the node

PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
RUN_DIR=/run/slurm
MYSQL_PID=/run/mysqld/mariadbd.wmbench.pid
LOG_DIR=/var/log/slurm

t_start=$EPOCHREALTIME
say() { echo "[ci_up] $*"; }
die() { echo "[ci_up] ERROR: $*" >&2; exit 1; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# wait_for SECONDS CMD...: poll CMD every 0.25 s until it succeeds; non-zero on timeout
wait_for() {
  local limit=$1; shift
  local deadline=$(( ${EPOCHSECONDS} + limit ))
  until "$@" >/dev/null 2>&1; do
    (( EPOCHSECONDS < deadline )) || return 1
    sleep 0.25
  done
}
# alive PIDFILE: the pid file names a running process
alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

[[ $(id -u) == 0 ]] || die "must run as root (daemons, /etc/slurm and apt need it)"

# --- packages --------------------------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if (( ${#missing[@]} )); then
  say "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
t_apt=$EPOCHREALTIME

# --- munge -----------------------------------------------------------------------------------
if [[ ! -s /etc/munge/munge.key ]]; then   # Debian's postinst normally creates it
  mungekey --create --force
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 755 /run/munge
install -d -o munge -g munge -m 700 /var/lib/munge /var/log/munge
if ! alive /run/munge/munged.pid; then
  runuser -u munge -- /usr/sbin/munged
fi
wait_for "$WAIT_S" munge -n || die "munged did not answer (see /var/log/munge/munged.log)"

# --- MariaDB, the accounting store behind slurmdbd --------------------------------------------
if ! mariadb-admin ping >/dev/null 2>&1; then
  install -d -o mysql -g mysql -m 755 /run/mysqld
  nohup /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 >/var/log/mariadbd.out 2>&1 &
  echo $! >"$MYSQL_PID"
  wait_for "$WAIT_S" mariadb-admin ping || die "mariadbd did not start (see /var/log/mariadbd.out)"
fi
mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '${DB_PASS}';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

# --- configuration ---------------------------------------------------------------------------
host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(( $(awk '/^MemTotal/ {print $2}' /proc/meminfo) / 1024 * 3 / 4 ))
install -d -m 755 /etc/slurm
install -d -o slurm -g slurm -m 755 /var/spool/slurmctld "$LOG_DIR" "$RUN_DIR"
install -d -m 755 /var/spool/slurmd

# write_conf FILE MODE: replace FILE with stdin when it differs; exit status 0 when it changed
write_conf() {
  local file=$1 mode=$2 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [[ -f $file ]] && cmp -s "$tmp" "$file"; then rm -f "$tmp"; return 1; fi
  install -o slurm -g slurm -m "$mode" "$tmp" "$file"
  rm -f "$tmp"
}

write_conf /etc/slurm/slurmdbd.conf 600 <<CONF || true
# written by wmbench slurm/ci_up.sh
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=3306
StorageUser=slurm
StoragePass=${DB_PASS}
StorageLoc=slurm_acct_db
LogFile=${LOG_DIR}/slurmdbd.log
PidFile=${RUN_DIR}/slurmdbd.pid
CONF

slurm_conf_changed=0
write_conf /etc/slurm/slurm.conf 644 <<CONF && slurm_conf_changed=1
# written by wmbench slurm/ci_up.sh: one node, accounting through slurmdbd, fast requeue
ClusterName=${CLUSTER}
SlurmctldHost=${host}
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job may start again once its credential expires (default 120 s)
AuthInfo=cred_expire=10
MailProg=/bin/true
MpiDefault=none
# no cgroups in CI containers
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobCompType=jobcomp/none
SchedulerType=sched/backfill
# schedule every 5 s instead of 60 s, so requeued jobs restart within ~15 s
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
MinJobAge=3600
KillWait=10
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=${RUN_DIR}/slurmctld.pid
SlurmdPidFile=${RUN_DIR}/slurmd.pid
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
NodeName=${host} CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=${PARTITION} Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONF

# --- slurm daemons ---------------------------------------------------------------------------
alive "$RUN_DIR/slurmdbd.pid" || /usr/sbin/slurmdbd
wait_for "$WAIT_S" sacctmgr -n list cluster || die "slurmdbd did not answer (see $LOG_DIR/slurmdbd.log)"
sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null

if alive "$RUN_DIR/slurmctld.pid"; then
  if (( slurm_conf_changed )); then say "slurm.conf changed: reconfiguring"; scontrol reconfigure; fi
else
  /usr/sbin/slurmctld
fi
alive "$RUN_DIR/slurmd.pid" || /usr/sbin/slurmd

node_state() { sinfo -h -N -n "$host" -o %T 2>/dev/null | head -n 1; }
node_ready() { [[ $(node_state) =~ ^(idle|mixed|allocated)$ ]]; }
if ! wait_for "$WAIT_S" node_ready; then
  # a node left drained/down by an earlier run is put back into service once
  scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
  wait_for 10 node_ready || true
fi
state=$(node_state)
t_end=$EPOCHREALTIME
say "node ${host} (${cpus} CPUs, ${mem_mb} MB) in partition ${PARTITION}: ${state:-no answer};" \
    "packages $(elapsed "$t_start" "$t_apt") s, daemons to ready $(elapsed "$t_apt" "$t_end") s," \
    "total $(elapsed "$t_start" "$t_end") s"
node_ready || die "node ${host} is '${state:-unknown}', not idle (see $LOG_DIR/slurmctld.log, $LOG_DIR/slurmd.log)"
