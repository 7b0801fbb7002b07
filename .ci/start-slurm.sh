#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (Debian's slurm-wlm + munge, everything as root), so
# the tests can submit real jobs through submitit. Idempotent: daemons already up are kept (and
# reconfigured when slurm.conf changed).
set -euo pipefail

node="$(hostname -s)"
conf=/etc/slurm/slurm.conf

node_idle() {
    sinfo --noheader --nodes="$node" --format=%t 2> /dev/null | grep -qx 'idle\|mix\|alloc'
}

if ! command -v slurmctld > /dev/null || ! command -v munged > /dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge > /dev/null
fi

# munge: the key and its folders belong to the munge user; /run/munge must exist before munged starts.
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
if ! munge -n > /dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
fi

# slurm.conf: one node with this machine's CPUs and (90 % of its) memory.
cpus="$(nproc)"
memory_mb="$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"
install -d /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > "$conf.new" <<EOF
# Written by .ci/start-slurm.sh: a one-node cluster for lt-bench's tests.
ClusterName=ltbench
SlurmctldHost=${node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerParameters=sched_interval=2
MinJobAge=3600
KillWait=2
NodeName=${node} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${memory_mb} State=UNKNOWN
PartitionName=debug Nodes=${node} Default=YES MaxTime=INFINITE State=UP
EOF

changed=yes
if cmp -s "$conf.new" "$conf"; then changed=no; fi
mv "$conf.new" "$conf"

if ! scontrol ping 2> /dev/null | grep -q UP; then
    slurmctld
elif [ "$changed" = yes ]; then
    scontrol reconfigure
fi
if [ ! -s /run/slurmd.pid ] || ! kill -0 "$(cat /run/slurmd.pid)" 2> /dev/null; then
    slurmd
fi

for _ in $(seq 60); do
    if node_idle; then
        sinfo
        exit 0
    fi
    scontrol update nodename="$node" state=resume > /dev/null 2>&1 || true
    sleep 1
done
echo "slurm: node $node did not become idle; see /var/log/slurm/" >&2
sinfo >&2 || true
exit 1
