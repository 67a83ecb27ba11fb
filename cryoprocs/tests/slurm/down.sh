#!/usr/bin/env bash
# Stop the SLURM started by up.sh: slurmd, slurmctld and munged by the pids recorded in DIR,
# then remove DIR (keep it with KEEP=1, e.g. to read DIR/log/).   Usage: down.sh DIR
set -uo pipefail
DIR=${1:?usage: down.sh DIR}
[ -f "$DIR/slurm.conf" ] || { echo "down.sh: $DIR is not a folder made by up.sh" >&2; exit 1; }
stop() {                                  # stop PIDFILE: TERM, wait up to 10 s, then KILL
    local f=$1 pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f" 2>/dev/null) || return 0
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null
}
stop "$DIR/slurmd.pid"
stop "$DIR/slurmctld.pid"
stop "$DIR/munged.pid"
if [ "${KEEP:-0}" != 1 ]; then
    rm -rf "$DIR"
fi
