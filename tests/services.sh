#!/usr/bin/env bash
# Runs a command with the services the tests need, on free 127.0.0.1 ports, and stops them afterwards:
#   moto's server (S3, ECR, SageMaker, CloudWatch Logs, STS), from PyPI into a virtual environment;
#   a registry server (Debian's docker-registry, registry 2.8) with its own config, run unprivileged.
#   sagemaker-training (AWS's toolkit) in the same virtual environment, as the oracle of the contract;
#   tests/sagemaker_standin.py, a SageMaker training API that really runs jobs (on moto's S3 and Logs).
# The command sees GROUNDS_TEST_MOTO (http://127.0.0.1:PORT), GROUNDS_TEST_REGISTRY (127.0.0.1:PORT) and
# GROUNDS_TEST_TOOLKIT_PYTHON (a Python that imports sagemaker_training) and GROUNDS_TEST_SAGEMAKER
# (http://127.0.0.1:PORT, for AWS_ENDPOINT_URL_SAGEMAKER).
set -euo pipefail
venv="${GROUNDS_TEST_VENV:-$HOME/.cache/grounds-test-venv}"
if [ ! -x "$venv/bin/moto_server" ]; then
  echo "services: installing moto[server] into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "moto[server]>=5,<6"
fi
# AWS's reference implementation of the training contract, the oracle of tests/fidelity.rs.
if ! "$venv/bin/python" -c "import sagemaker_training" >/dev/null 2>&1; then
  echo "services: installing sagemaker-training into $venv" >&2
  "$venv/bin/pip" install --quiet "sagemaker-training==5.1.4"
fi
if [ ! -x /usr/bin/docker-registry ]; then
  echo "services: installing docker-registry" >&2
  # The package would start a system service; ours runs on its own port and config, so the package's is
  # kept from starting (policy-rc.d), and nothing that runs on the machine is stopped.
  policy=/usr/sbin/policy-rc.d
  made_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
  if [ -n "$made_policy" ]; then rm -f "$policy"; fi
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
moto_port="$(free_port)"
registry_port="$(free_port)"
sagemaker_port="$(free_port)"
state="$(mktemp -d /tmp/grounds-services.XXXXXX)"
chmod 755 "$state"
mkdir -p "$state/registry" && chmod 777 "$state/registry"
cat > "$state/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $state/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$registry_port
YML
chmod 644 "$state/registry.yml"

"$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" > "$state/moto.log" 2>&1 &
moto_pid=$!
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
  setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/docker-registry serve "$state/registry.yml" > "$state/registry.log" 2>&1 &
else
  /usr/bin/docker-registry serve "$state/registry.yml" > "$state/registry.log" 2>&1 &
fi
registry_pid=$!
# The SageMaker stand-in: the training API on its own port; S3 and CloudWatch Logs are moto's.
AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port" AWS_REGION=us-east-1 STANDIN_STOP_GRACE="${STANDIN_STOP_GRACE:-5}" \
  "$venv/bin/python" "$(dirname "$0")/sagemaker_standin.py" "$sagemaker_port" "$state/sagemaker" > "$state/sagemaker.log" 2>&1 &
sagemaker_pid=$!
stop_services() {
  kill "$moto_pid" "$registry_pid" "$sagemaker_pid" 2>/dev/null || true
  wait "$moto_pid" "$registry_pid" "$sagemaker_pid" 2>/dev/null || true
  # Containers and networks of jobs the stand-in was still running.
  docker ps -aq --filter label=grounds-standin=1 | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker network ls -q --filter name=standin- | xargs -r docker network rm >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap stop_services EXIT

wait_for() {
  local what="$1" url="$2" log="$3"
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$url" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.3
  done
  echo "services: $what did not start; its log:" >&2
  cat "$log" >&2
  exit 1
}
wait_for moto "http://127.0.0.1:$moto_port/moto-api/" "$state/moto.log"
wait_for registry "http://127.0.0.1:$registry_port/v2/" "$state/registry.log"
wait_for sagemaker "http://127.0.0.1:$sagemaker_port/" "$state/sagemaker.log"
echo "services: moto on 127.0.0.1:$moto_port, registry on 127.0.0.1:$registry_port, SageMaker stand-in on 127.0.0.1:$sagemaker_port" >&2

export GROUNDS_TEST_MOTO="http://127.0.0.1:$moto_port"
export GROUNDS_TEST_REGISTRY="127.0.0.1:$registry_port"
export GROUNDS_TEST_TOOLKIT_PYTHON="$venv/bin/python"
export GROUNDS_TEST_SAGEMAKER="http://127.0.0.1:$sagemaker_port"
"$@"
