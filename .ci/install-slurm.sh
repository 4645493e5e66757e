#!/usr/bin/env bash
# Install a single-node Slurm (Debian packages slurmctld slurmd slurm-client munge) for the
# tests marked `slurm`. Idempotent; safe to run on every CI run.
#
# It only installs packages: it starts no service and writes no slurm.conf. The test fixture
# (tests/slurm_cluster.py) writes its own configuration into a temporary directory and runs
# munged, slurmctld and slurmd there as plain daemons, then stops them by their PIDs.
#
# Exits 0 with a message when apt-get is not available (the SLURM tests then skip themselves);
# exits non-zero when apt-get is there but the installation fails, so that CI does not quietly
# skip the SLURM tests.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)
BINARIES=(slurmctld slurmd sinfo sbatch squeue scontrol munged)

slurm_version() {
    # `sinfo --version` needs a slurm.conf; ask dpkg (or say nothing precise) instead.
    dpkg-query -W -f='slurmd ${Version}' slurmd 2>/dev/null || echo "version unknown"
}

missing=()
for b in "${BINARIES[@]}"; do
    PATH="$PATH:/usr/sbin:/sbin" command -v "$b" >/dev/null 2>&1 || missing+=("$b")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-slurm: Slurm and munge are already installed ($(slurm_version))."
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-slurm: apt-get is not available on this machine; not installing Slurm." >&2
    echo "install-slurm: the tests marked 'slurm' will be skipped. Install slurmctld, slurmd," >&2
    echo "install-slurm: the Slurm client tools and munge with your system's package manager to run them." >&2
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        echo "install-slurm: not root and no password-less sudo; not installing Slurm (missing: ${missing[*]})." >&2
        echo "install-slurm: the tests marked 'slurm' will be skipped. As root, run: $0" >&2
        exit 0
    fi
fi

# Keep the packages' maintainer scripts from starting system services (munge, slurmctld,
# slurmd) on machines without a policy of their own: the tests run their own daemons.
POLICY=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    added_policy=1
fi
cleanup() {
    if [ "$added_policy" -eq 1 ]; then "${SUDO[@]}" rm -f "$POLICY"; fi
}
trap cleanup EXIT

echo "install-slurm: installing ${PACKAGES[*]} (missing: ${missing[*]})"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${PACKAGES[@]}" >/dev/null

for b in "${BINARIES[@]}"; do
    if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$b" >/dev/null 2>&1; then
        echo "install-slurm: '$b' is still missing after installing ${PACKAGES[*]}" >&2
        exit 1
    fi
done
echo "install-slurm: installed $(slurm_version)."
