#!/usr/bin/env bash
# A single-node SLURM on this machine, for tests/test_slurm.py (and for trying the cluster route by hand), from
# Debian's packages: munged, slurmctld and slurmd, every daemon on 127.0.0.1 only (CommunicationParameters=
# NoInAddrAny, NoCtldInAddrAny), every file (config, keys, state, logs, sockets, pid files) under one folder, and
# one link in /etc: /etc/slurm/slurm.conf -> DIR/slurm.conf, because the executor's job step
# (snakemake-executor-plugin-slurm-jobstep 0.6.1) removes SLURM_CONF from the environment of the `srun` it starts
# inside each job, which then finds its config only at the default path. `up` refuses to replace a config of
# another cluster there; `down` removes the link.
#
#   .ci/slurm.sh install            apt-get install slurmctld slurmd slurm-client munge (root or sudo)
#   .ci/slurm.sh up DIR [PORT]      write DIR/slurm.conf, start the daemons, wait until the node is idle
#   .ci/slurm.sh down DIR           stop the daemons this script started in DIR (by their pid files)
#
# Then `export SLURM_CONF=DIR/slurm.conf` for sbatch, squeue, scancel and Snakemake's SLURM executor.
# Partitions `cpu` (default) and `gpu` (the profile's names; no GPU here: jobs that ask for none run on either).
# Memory: jobs get what --mem asks (CR_Core_Memory). A job over it is killed by slurmstepd's own polling
# (jobacct_gather/linux, OverMemoryKill, every second) and ends OUT_OF_MEMORY: no cgroup plugin, because a
# container's cgroup file system is rarely SLURM's to write. No accounting daemon: the executor reads job states
# with squeue (pipelines/profiles/slurm: slurm-status-command), which sees finished jobs for MinJobAge seconds.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)

die() { echo "error: slurm.sh: $*" >&2; exit 1; }

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null; then
        echo "slurm: $(slurmctld -V)"; return 0
    fi
    command -v apt-get >/dev/null || die "no SLURM on PATH and no apt-get to install it"
    local sudo=""
    if [ "$(id -u)" != 0 ]; then command -v sudo >/dev/null || die "installing SLURM needs root or sudo"; sudo=sudo; fi
    $sudo apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
    echo "slurm: $(slurmctld -V)"
}

up() {
    local dir port host cpus mem
    dir="$(realpath -m "$1")"; port="${2:-6817}"
    command -v slurmctld >/dev/null || die "slurmctld not found (run: .ci/slurm.sh install)"
    [ "$(id -u)" = 0 ] || die "the daemons run as root here (SlurmUser=root); run as root"
    mkdir -p "$dir"/{state,spool,munge,log}
    chmod 700 "$dir/munge"
    host="$(hostname -s)"
    cpus="$(nproc)"
    mem="$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)"  # MB; slurmd refuses more than it sees
    [ -f "$dir/munge/munge.key" ] || { mungekey --create --keyfile="$dir/munge/munge.key" \
        || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1 count=1024 status=none; }
    chmod 400 "$dir/munge/munge.key"
    cat >"$dir/slurm.conf" <<EOF
ClusterName=prompttune-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=300
KillWait=10
SchedulerParameters=sched_interval=2
NodeName=$host NodeAddr=127.0.0.1 NodeHostname=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
EOF
    if [ -e /etc/slurm/slurm.conf ] && [ "$(readlink /etc/slurm/slurm.conf)" != "$dir/slurm.conf" ]; then
        if [ -L /etc/slurm/slurm.conf ] && [ ! -e "$(readlink /etc/slurm/slurm.conf)" ]; then
            rm /etc/slurm/slurm.conf  # the link of a test cluster whose folder is gone
        else
            die "/etc/slurm/slurm.conf is another cluster's config; not replacing it"
        fi
    fi
    mkdir -p /etc/slurm
    ln -sfn "$dir/slurm.conf" /etc/slurm/slurm.conf
    export SLURM_CONF="$dir/slurm.conf"
    munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
        --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munge.seed"
    slurmctld -c -f "$SLURM_CONF"   # -c: no state from an earlier run
    slurmd -f "$SLURM_CONF" -N "$host"
    for _ in $(seq 60); do
        if sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; then
            echo "slurm: up ($cpus CPUs, $mem MB; SLURM_CONF=$SLURM_CONF)"; return 0
        fi
        sleep 1
    done
    tail -n 20 "$dir"/log/*.log >&2 || true
    die "the node did not become idle within 60 s (logs above)"
}

down() {
    local dir pidfile pid
    dir="$(realpath -m "$1")"
    for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munged.pid"; do
        [ -f "$pidfile" ] || continue
        pid="$(cat "$pidfile")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$pidfile"
    done
    if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$dir/slurm.conf" ]; then rm /etc/slurm/slurm.conf; fi
}

case "${1:-}" in
    install) install ;;
    up) [ $# -ge 2 ] || die "usage: slurm.sh up DIR [PORT]"; up "$2" "${3:-}" ;;
    down) [ $# -eq 2 ] || die "usage: slurm.sh down DIR"; down "$2" ;;
    *) die "usage: slurm.sh install | up DIR [PORT] | down DIR" ;;
esac
