#!/usr/bin/env bash
# tests/search starts a throwaway PostgreSQL server (initdb, pg_ctl): make sure its binaries are here.
# Debian's postgresql package brings them (under /usr/lib/postgresql/<version>/bin); as root with apt-get
# they are installed, otherwise the PostgreSQL test skips and says why. Never fails: the suite decides.
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } ||
        echo "Installing Debian's postgresql failed: tests/search will skip its PostgreSQL test." >&2
else
    echo "PostgreSQL's server is not installed and cannot be installed here: tests/search will skip its test." >&2
fi
exit 0
