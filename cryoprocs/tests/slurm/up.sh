#!/usr/bin/env bash
# Start a single-node SLURM on this machine for the queue tests and the queue benchmark.
#
#   up.sh [DIR]      DIR: state folder (default: a new mktemp folder); prints DIR on stdout
#   down.sh DIR      stops what up.sh started (by pid) and removes DIR
#
# Installs Debian's slurmctld, slurmd, slurm-client and munge with apt-get when they are
# missing (root only), then starts, with every file under DIR and free TCP ports (so
# another SLURM on the machine is left alone): a munged on its own socket, slurmctld and
# slurmd (NodeName localhost, `slurmd -N localhost`: the hostname is not localhost), and
# waits until `sinfo` reports the node idle. Clients need `export SLURM_CONF=DIR/slurm.conf`
# (DIR/env.sh says so). Exit status: 0 started, 3 SLURM cannot be installed/started here
# (the reason on stderr), 1 other errors.
#
# Settings (slurm.conf): SlurmdParameters=config_overrides with CPUS (default 16) and
# REALMEM_MB (default 8000) declared whatever the machine has, so jobs asking more threads
# than the real cores still run; no accounting (AccountingStorageType=accounting_storage/none:
# use `scontrol show job`, not sacct); proctrack/linuxproc, task/none (no cgroups needed);
# batch_sched_delay=0 (jobs start when submitted, not up to 3 s later).
set -euo pipefail

CPUS=${CRYOPROCS_SLURM_CPUS:-16}
REALMEM_MB=${CRYOPROCS_SLURM_MEMORY_MB:-8000}
PACKAGES="slurmctld slurmd slurm-client munge"

cannot() { echo "up.sh: SLURM cannot be started here: $*" >&2; exit 3; }
log() { echo "up.sh: $*" >&2; }

missing=""
for b in slurmctld slurmd sbatch squeue sinfo scontrol munged munge; do
    command -v "$b" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$b" >/dev/null 2>&1 \
        || missing="$missing $b"
done
export PATH="$PATH:/usr/sbin:/sbin"
if [ -n "$missing" ]; then
    [ "$(id -u)" = 0 ] || cannot "missing$missing and not root (apt-get needs root)"
    command -v apt-get >/dev/null 2>&1 || cannot "missing$missing and no apt-get"
    log "installing $PACKAGES (missing:$missing)"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $PACKAGES; } \
            >"${TMPDIR:-/tmp}/cryoprocs-slurm-apt.log" 2>&1; then
        tail -5 "${TMPDIR:-/tmp}/cryoprocs-slurm-apt.log" >&2
        cannot "apt-get install $PACKAGES failed (log: ${TMPDIR:-/tmp}/cryoprocs-slurm-apt.log)"
    fi
fi
[ "$(id -u)" = 0 ] || cannot "the daemons run as root here (SlurmUser=root); run as root"

DIR=${1:-$(mktemp -d "${TMPDIR:-/tmp}/cryoprocs-slurm.XXXXXX")}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
chmod 755 "$DIR"
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/munge"
chown munge:munge "$DIR/munge" 2>/dev/null || cannot "no 'munge' user (is munge installed?)"
chmod 755 "$DIR/munge"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
        2>/dev/null || echo "$1"
}
CTLD_PORT=$(free_port 6817)
SLURMD_PORT=$(free_port 6818)
while [ "$SLURMD_PORT" = "$CTLD_PORT" ]; do SLURMD_PORT=$(free_port 6818); done

# munge: a daemon of our own on a socket under DIR (the package's key)
SOCKET="$DIR/munge/munge.socket"
runuser -u munge -- munged --socket="$SOCKET" --pid-file="$DIR/munge/munged.pid" \
    --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed" \
    || cannot "munged did not start (see $DIR/munge/munged.log)"
cp "$DIR/munge/munged.pid" "$DIR/munged.pid"

cat > "$DIR/slurm.conf" <<CONF
# single-node SLURM written by cryoprocs/tests/slurm/up.sh
ClusterName=cryoprocs
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
# schedule a batch job as soon as it is submitted (default: up to 3 s later); keep finished
# jobs visible to `scontrol show job` for an hour (default 300 s)
SchedulerParameters=batch_sched_delay=0
MinJobAge=3600
PropagatePrioProcess=1
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd.%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=localhost CPUs=$CPUS RealMemory=$REALMEM_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$DIR/slurm.conf"
echo "export SLURM_CONF=$DIR/slurm.conf" > "$DIR/env.sh"

slurmctld -f "$SLURM_CONF" || cannot "slurmctld did not start (see $DIR/log/slurmctld.log)"
slurmd -f "$SLURM_CONF" -N localhost || cannot "slurmd did not start (see $DIR/log/slurmd.log)"

state=""
for _ in $(seq 1 150); do
    state=$(sinfo -h -o %t 2>/dev/null | head -1 || true)
    [ "$state" = "idle" ] && break
    sleep 0.2
done
if [ "$state" != "idle" ]; then
    tail -5 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    "$(dirname "$0")/down.sh" "$DIR" >/dev/null 2>&1 || true
    cannot "the node did not become idle in 30 s (sinfo state: '${state:-none}')"
fi
log "SLURM up in $DIR (slurmctld port $CTLD_PORT, node localhost with $CPUS CPUs, ${REALMEM_MB} MB)"
echo "$DIR"
