#!/usr/bin/env bash
# Debian's PostgreSQL server binaries for the production profile and its system test
# (tests/system/test_production.py): initdb and pg_ctl under /usr/lib/postgresql/<version>/bin,
# pg_trgm (Prefect's server needs it) from postgresql-contrib. Only the binaries: the stack creates
# and starts its own cluster (prefect_mlops/postgres.py); Debian's default cluster is not started.
# Idempotent: does nothing when both are installed.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
    && ls /usr/share/postgresql/*/extension/pg_trgm.control >/dev/null 2>&1; then
    echo "postgresql already installed: $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d: the package's post-install would start Debian's own cluster on 5432; nothing needs it.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends postgresql postgresql-contrib >/dev/null
echo "installed $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"
