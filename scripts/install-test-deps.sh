#!/usr/bin/env bash
# Installs what the client tests need on a fresh Debian machine: the seed
# samples' runtimes (curl, Ruby, PHP with curl, Go with gorequest from
# Debian, Node.js), openssl for the throw-away test certificate, psql/pg_dump
# for the PostgreSQL run, nginx (with auth_request) for the gate's test, and
# Debian's Chromium and chromedriver for the partner portal's browser test
# (tests/portal), the Python and npm packages of tests/clients, tests/portal
# and clients/python/tests, and schemathesis (pinned) for the admin API's
# fuzz run (scripts/admin-api-fuzz.sh).
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
command -v ruby >/dev/null || need+=(ruby)
command -v php >/dev/null || need+=(php-cli)
{ command -v php >/dev/null && php -m | grep -qx curl; } || need+=(php-curl)
command -v psql >/dev/null || need+=(postgresql-client)
{ command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } || need+=(nginx-light)
command -v go >/dev/null || need+=(golang-go)
[ -d /usr/share/gocode/src/github.com/parnurzeal/gorequest ] || need+=(golang-github-parnurzeal-gorequest-dev)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
python3 -m pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt \
  -r tests/portal/requirements.txt -r clients/python/tests/requirements.txt
# The admin API's property-based fuzzer (scripts/admin-api-fuzz.sh), pinned:
# its checks and its data generation change between releases.
python3 -m pip install --quiet --disable-pip-version-check "schemathesis==4.32.5"
npm ci --silent --no-audit --no-fund --prefix tests/clients
