#!/bin/bash
# Start a single-node Slurm cluster (munge + slurmctld + slurmd) without systemd.
# (Used by tests/training/test_slurm.py; written for the project's test machines: Debian 12, root, no systemd.)
# Usage: start-slurm.sh [BASE_DIR]   (needs root; Debian 12 packages slurmctld slurmd slurm-client munge)
set -euo pipefail
BASE=${1:?usage: $0 BASE_DIR (a scratch directory for state, logs and pid files)}
t0=$(date +%s.%N)
ts() { printf '[%6.2fs] %s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" "$*"; }

mkdir -p "$BASE"/{state,spool,log,run}

# ---- munge ----
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key   # or: dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
if ! munge -n </dev/null >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged            # daemonizes itself; pid in /run/munge/munged.pid
fi
for i in $(seq 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
ts "munged up (pid $(cat /run/munge/munged.pid))"

# ---- slurm.conf ----
export SLURM_CONF=$BASE/slurm.conf
cat > "$SLURM_CONF" <<CONF
ClusterName=testcluster
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=5
MailProg=/bin/true
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=1
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF

# ---- daemons (they daemonize; PIDs in $BASE/run/*.pid) ----
/usr/sbin/slurmctld -f "$SLURM_CONF" -i          # -i: ignore (possibly stale) state files
ts "slurmctld started"
/usr/sbin/slurmd -f "$SLURM_CONF" -N localhost   # -N: node name != hostname
ts "slurmd started"

for i in $(seq 300); do
  st=$(sinfo -h -N -o %T 2>/dev/null || true)
  [ "$st" = idle ] && break
  sleep 0.1
done
ts "node state: $st"
[ "$st" = idle ] || { echo "node not idle"; tail -20 "$BASE"/log/*.log; exit 1; }
echo "export SLURM_CONF=$SLURM_CONF"
