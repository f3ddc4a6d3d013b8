#!/usr/bin/env bash
# Runs a command with the services the tests need, on free 127.0.0.1 ports, and stops them afterwards:
#   moto's server (S3, ECR, SageMaker, CloudWatch Logs, STS), from PyPI into a virtual environment;
#   a registry server (Debian's docker-registry, registry 2.8) with its own config, run unprivileged.
#   sagemaker-training (AWS's toolkit) in the same virtual environment, as the oracle of the contract;
#   tests/sagemaker_standin.py, a SageMaker training API that really runs jobs (on moto's S3 and Logs).
#   an OpenSSH server (Debian's openssh-server) on its own port, config and keys, whose `docker` reaches
#   this machine's engine: the remote Docker host of `train local --docker-host ssh://…`;
#   tests/tls_proxy.py, this machine's engine on TCP with TLS and client certificates (as `dockerd
#   --tlsverify`), with a CA and certificates made here by openssl.
# The command sees GROUNDS_TEST_MOTO (http://127.0.0.1:PORT), GROUNDS_TEST_REGISTRY (127.0.0.1:PORT) and
# GROUNDS_TEST_TOOLKIT_PYTHON (a Python that imports sagemaker_training) and GROUNDS_TEST_SAGEMAKER
# (http://127.0.0.1:PORT, for AWS_ENDPOINT_URL_SAGEMAKER), GROUNDS_TEST_SSH (user@127.0.0.1:PORT),
# GROUNDS_TEST_SSH_NO_DOCKER (the same server on a port where no docker is on the PATH) and
# GROUNDS_TEST_SSH_CONFIG (an ssh client config with the test's key, for `ssh -F`), GROUNDS_TEST_DOCKER_TLS
# (tcp://127.0.0.1:PORT) and GROUNDS_TEST_DOCKER_CERT_PATH (the client's ca.pem, cert.pem, key.pem).
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
# AWS's SageMaker Python SDK (2.x), in a venv of its own (its pins are not the toolkit's): the oracle of
# the request a framework task sends (tests/it/framework.rs).
sdk_venv="${GROUNDS_TEST_SDK_VENV:-$HOME/.cache/grounds-test-sdk-venv}"
if ! "$sdk_venv/bin/python" -c "import sagemaker" >/dev/null 2>&1; then
  echo "services: installing the SageMaker Python SDK into $sdk_venv" >&2
  python3 -m venv "$sdk_venv"
  "$sdk_venv/bin/pip" install --quiet "sagemaker>=2.200,<3"
fi
export GROUNDS_TEST_SDK_PYTHON="$sdk_venv/bin/python"
if [ ! -x /usr/bin/docker-registry ]; then
  echo "services: installing docker-registry" >&2
  "$(dirname "$0")/apt-install.sh" docker-registry
fi
if [ ! -x /usr/sbin/sshd ]; then
  echo "services: installing openssh-server" >&2
  "$(dirname "$0")/apt-install.sh" openssh-server openssh-client
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
moto_port="$(free_port)"
registry_port="$(free_port)"
sagemaker_port="$(free_port)"
ssh_port="$(free_port)"
ssh_no_docker_port="$(free_port)"
tls_port="$(free_port)"
state="$(mktemp -d /tmp/grounds-services.XXXXXX)"
chmod 755 "$state"

# The SSH server: keys made here, logins only with the test's key, only on 127.0.0.1. It accepts
# DOCKER_HOST from the client, so a test can give the far side an engine that is down; on its second port
# every command runs with a PATH that has no docker.
mkdir -p "$state/ssh" && chmod 700 "$state/ssh"
ssh-keygen -q -t ed25519 -N '' -f "$state/ssh/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$state/ssh/client_key"
cp "$state/ssh/client_key.pub" "$state/ssh/authorized_keys"
cat > "$state/ssh/sshd_config" <<CONF
Port $ssh_port
Port $ssh_no_docker_port
ListenAddress 127.0.0.1
HostKey $state/ssh/host_key
PidFile $state/ssh/sshd.pid
AuthorizedKeysFile $state/ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
MaxStartups 100
MaxSessions 100
AcceptEnv DOCKER_HOST
Match LocalPort $ssh_no_docker_port
  ForceCommand env PATH=/nonexistent /bin/sh -c "\$SSH_ORIGINAL_COMMAND"
CONF
cat > "$state/ssh/config" <<CONF
Host *
  IdentityFile $state/ssh/client_key
  IdentitiesOnly yes
  UserKnownHostsFile $state/ssh/known_hosts
  StrictHostKeyChecking accept-new
  LogLevel ERROR
CONF
mkdir -p /run/sshd 2>/dev/null || true

# The engine over TLS: a CA, a server certificate for 127.0.0.1 and a client certificate, as
# `docker` expects them in DOCKER_CERT_PATH.
tls="$state/tls"
mkdir -p "$tls/client"
make_cert() { # name subject usage extra-extension
  openssl req -newkey rsa:2048 -nodes -keyout "$tls/$1-key.pem" -out "$tls/$1.csr" -subj "/CN=$2" 2>/dev/null
  printf 'extendedKeyUsage=%s\n%s\n' "$3" "$4" > "$tls/$1.ext"
  openssl x509 -req -in "$tls/$1.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca-key.pem" -CAcreateserial \
    -out "$tls/$1-cert.pem" -days 2 -extfile "$tls/$1.ext" 2>/dev/null
}
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tls/ca-key.pem" -out "$tls/ca.pem" -days 2 \
  -subj "/CN=grounds test CA" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
make_cert server 127.0.0.1 serverAuth "subjectAltName=IP:127.0.0.1"
make_cert client grounds-test clientAuth ""
cp "$tls/ca.pem" "$tls/client/ca.pem"
cp "$tls/client-cert.pem" "$tls/client/cert.pem"
cp "$tls/client-key.pem" "$tls/client/key.pem"
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
/usr/sbin/sshd -D -f "$state/ssh/sshd_config" -E "$state/ssh/sshd.log" &
sshd_pid=$!
python3 "$(dirname "$0")/tls_proxy.py" "$tls_port" "$tls" > "$state/tls.log" 2>&1 &
tls_pid=$!
stop_services() {
  kill "$moto_pid" "$registry_pid" "$sagemaker_pid" "$sshd_pid" "$tls_pid" 2>/dev/null || true
  wait "$moto_pid" "$registry_pid" "$sagemaker_pid" "$sshd_pid" "$tls_pid" 2>/dev/null || true
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
for _ in $(seq 1 100); do
  if python3 -c "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" "$tls_port" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
ssh_user="$(id -un)"
for _ in $(seq 1 100); do
  if ssh -F "$state/ssh/config" -p "$ssh_port" -o BatchMode=yes "$ssh_user@127.0.0.1" true >/dev/null 2>&1; then
    break
  fi
  sleep 0.2
done
if ! ssh -F "$state/ssh/config" -p "$ssh_port" -o BatchMode=yes "$ssh_user@127.0.0.1" docker version >/dev/null; then
  echo "services: the SSH server did not start, or its docker cannot reach the engine; its log:" >&2
  cat "$state/ssh/sshd.log" >&2
  exit 1
fi
echo "services: moto on 127.0.0.1:$moto_port, registry on 127.0.0.1:$registry_port, SageMaker stand-in on 127.0.0.1:$sagemaker_port, sshd on 127.0.0.1:$ssh_port" >&2

export GROUNDS_TEST_MOTO="http://127.0.0.1:$moto_port"
export GROUNDS_TEST_REGISTRY="127.0.0.1:$registry_port"
export GROUNDS_TEST_TOOLKIT_PYTHON="$venv/bin/python"
export GROUNDS_TEST_SAGEMAKER="http://127.0.0.1:$sagemaker_port"
export GROUNDS_TEST_SSH="$ssh_user@127.0.0.1:$ssh_port"
export GROUNDS_TEST_SSH_NO_DOCKER="$ssh_user@127.0.0.1:$ssh_no_docker_port"
export GROUNDS_TEST_SSH_CONFIG="$state/ssh/config"
export GROUNDS_TEST_DOCKER_TLS="tcp://127.0.0.1:$tls_port"
export GROUNDS_TEST_DOCKER_CERT_PATH="$tls/client"
"$@"
