#!/usr/bin/env bash
# A two-node Slurm cluster on this host, for the tests: munged, slurmctld and two slurmd (nodes node1 and
# node2), all listening on 127.0.0.1 only, with every file (config, munge key, state, logs, pid files) under
# one directory. Debian's slurm-wlm is built for several slurmd on one host (`scontrol show config` says
# MULTIPLE_SLURMD = Yes): both nodes have NodeAddr 127.0.0.1 and a port of their own, and each claims
# the whole host's cores and memory.
#
#   tests/slurm/cluster.sh start DIR   write DIR/slurm.conf, start the daemons, wait until both nodes are idle
#   tests/slurm/cluster.sh stop DIR    cancel the jobs left, stop the daemons started by `start DIR`
#
# Clients find the cluster through SLURM_CONF=DIR/slurm.conf, or through DIR/bin first on PATH: wrappers of
# the client commands that set it. The wrappers matter inside jobs, where the slurm-jobstep executor calls
# srun with every SLURM_* variable but a few removed, SLURM_CONF too (a real cluster has /etc/slurm).
# Ports: SLURMCTLD_PORT and SLURMD_PORT (defaults 16817, 16818; node2's slurmd: SLURMD_PORT + 1). Needs
# root (SlurmUser and SlurmdUser are root) and the Debian packages slurm-wlm and munge. No accounting daemon: jobs are looked up with
# squeue while slurmctld keeps them (MinJobAge).
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$(realpath -m "$2")
export SLURM_CONF="$dir/slurm.conf"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {  # SIGTERM the daemon whose pid the file holds, then SIGKILL it after 10 s
    local pidfile=$1 pid i
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || return 0
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

write_config() {
    local node port=${SLURMD_PORT:-16818}
    # This host's sockets, cores and memory as slurmd sees them, minus the hostname.
    node=$(slurmd -C | head -n1 | sed 's/^NodeName=[^ ]* //')
    mkdir -p "$dir/state" "$dir/spool"
    cat > "$SLURM_CONF" <<EOF
# Written by tests/slurm/cluster.sh: a two-node test cluster on 127.0.0.1.
ClusterName=convbench-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=${SLURMCTLD_PORT:-16817}
SlurmdPort=${SLURMD_PORT:-16818}
SrunPortRange=60001-60100
# Bind to the addresses named here, not to every interface.
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
PlugStackConfig=$dir/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# Finished jobs stay visible to squeue and scontrol for 10 minutes (the status checks rely on it).
MinJobAge=600
NodeName=node1 NodeAddr=127.0.0.1 NodeHostname=localhost Port=$port $node State=UNKNOWN
NodeName=node2 NodeAddr=127.0.0.1 NodeHostname=localhost Port=$((port + 1)) $node State=UNKNOWN
PartitionName=debug Nodes=node1,node2 Default=YES MaxTime=INFINITE State=UP
EOF
    : > "$dir/plugstack.conf"
    mkdir -p "$dir/bin"
    local tool
    for tool in sbatch srun squeue scontrol scancel sinfo sacct; do
        printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$SLURM_CONF" "$(command -v "$tool")" > "$dir/bin/$tool"
        chmod +x "$dir/bin/$tool"
    done
}

start() {
    for tool in munged mungekey slurmctld slurmd sinfo; do
        command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install slurm-wlm munge" >&2; exit 3; }
    done
    [ "$(id -u)" = 0 ] || { echo "the test cluster runs its daemons as root" >&2; exit 3; }
    mkdir -p "$dir" && chmod 700 "$dir"
    write_config
    [ -f "$dir/munge.key" ] || mungekey --create --keyfile="$dir/munge.key"
    chmod 400 "$dir/munge.key"
    # --force: munged wants a socket directory that every user can enter; this one is private.
    munged --force --socket="$dir/munge.socket" --key-file="$dir/munge.key" --pid-file="$dir/munged.pid" \
        --log-file="$dir/munged.log" --seed-file="$dir/munged.seed" || fail "munged did not start"
    slurmctld -c -f "$SLURM_CONF" || fail "slurmctld did not start"
    slurmd -f "$SLURM_CONF" -N node1 || fail "slurmd (node1) did not start"
    slurmd -f "$SLURM_CONF" -N node2 || fail "slurmd (node2) did not start"
    local state="" deadline=$((SECONDS + 30))
    while [ $SECONDS -lt $deadline ]; do
        state=$(timeout 5 sinfo -h -N -o %T 2>/dev/null | sort | tr '\n' ' ' || true)
        [ "$state" = "idle idle " ] && { echo "slurm is up: SLURM_CONF=$SLURM_CONF"; return 0; }
        sleep 0.1
    done
    fail "the nodes did not become idle (states: '${state:-no answer}')"
}

fail() {  # say why, show the daemons' last words, stop what started
    echo "$1; logs:" >&2
    tail -n 20 "$dir"/slurmctld.log "$dir"/slurmd-node*.log "$dir"/munged.log >&2 2>/dev/null || true
    stop
    exit 1
}

stop() {
    local deadline=$((SECONDS + 10))
    if alive "$dir/slurmctld.pid"; then  # cancel the jobs of this cluster, and let slurmd end their steps
        timeout 5 scancel --full --quiet --partition debug 2>/dev/null || true
        while [ $SECONDS -lt $deadline ] && [ -n "$(timeout 2 squeue -h -t R,CG,PD 2>/dev/null)" ]; do
            sleep 0.1
        done
    fi
    stop_pidfile "$dir/slurmd-node1.pid"
    stop_pidfile "$dir/slurmd-node2.pid"
    stop_pidfile "$dir/slurmctld.pid"
    stop_pidfile "$dir/munged.pid"
}

case $action in
    start) start ;;
    stop) stop ;;
    *) usage ;;
esac
