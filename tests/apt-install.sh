#!/usr/bin/env bash
# apt-install.sh PACKAGE...: installs Debian packages that would start a system service (docker-registry,
# openssh-server) without starting it: the tests and benches run their own on their own ports and configs,
# so the package's service is kept from starting (policy-rc.d), and nothing running on the machine stops.
set -euo pipefail
policy=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
fi
trap 'if [ -n "$made_policy" ]; then rm -f "$policy"; fi' EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
