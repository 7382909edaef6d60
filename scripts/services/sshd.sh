# shellcheck shell=bash
# Sourced by scripts/test: Debian's OpenSSH sshd on 127.0.0.1 (three listening ports) for the
# opskit-ssh and `opskit ssh` tests, with its own host keys, client keys, authorized_keys and a
# throwaway user with a password (created here, removed on exit).
#
# Exports:
#   OPSKIT_TEST_SSHD_PORTS     space-separated ports sshd listens on (first one: OPSKIT_TEST_SSHD_PORT)
#   OPSKIT_TEST_SSHD_HOST_PUB  the server's ed25519 host public key (OpenSSH one-line format)
#   OPSKIT_TEST_SSHD_HOST_CA_PUB  the CA that signed the server's host certificate (principal 127.0.0.1)
#   OPSKIT_TEST_SSH_USER / OPSKIT_TEST_SSH_PASSWORD   the test user and its password
#   OPSKIT_TEST_SSH_KEY        unencrypted ed25519 client key (authorized)
#   OPSKIT_TEST_SSH_KEY_ECDSA  unencrypted ECDSA client key (authorized)
#   OPSKIT_TEST_SSH_KEY_RSA    RSA client key encrypted with OPSKIT_TEST_SSH_KEY_PASSPHRASE (authorized)
#   OPSKIT_TEST_SSHD_SUDO      1 when the test user may run `sudo` with its password (always asked:
#                              no NOPASSWD, no cached credentials), for `opskit ssh run --sudo`
#   OPSKIT_TEST_SSHD_ACCEPT_ENV  the `AcceptEnv` pattern of sshd (OPSKIT_*), for `opskit ssh run --env`

if [ ! -x /usr/sbin/sshd ] && [ "$(id -u)" = 0 ]; then
  (apt-get install -y openssh-server >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y openssh-server >/dev/null; })
fi
if [ ! -x /usr/bin/sudo ] && [ "$(id -u)" = 0 ]; then
  (apt-get install -y sudo >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y sudo >/dev/null; })
fi

if [ -x /usr/sbin/sshd ] && [ "$(id -u)" = 0 ]; then
  _sshd_dir="$OPSKIT_TEST_TMP/sshd"
  mkdir -p /run/sshd "$_sshd_dir"
  ssh-keygen -q -t ed25519 -N '' -f "$_sshd_dir/host_ed25519"
  # A host CA and a host certificate for 127.0.0.1 (used only by clients that trust the CA).
  ssh-keygen -q -t ed25519 -N '' -f "$_sshd_dir/host_ca"
  ssh-keygen -q -s "$_sshd_dir/host_ca" -I opskit-test-host -h -n 127.0.0.1 "$_sshd_dir/host_ed25519.pub"
  ssh-keygen -q -t ed25519 -N '' -f "$_sshd_dir/client_ed25519"
  ssh-keygen -q -t ecdsa -b 256 -N '' -f "$_sshd_dir/client_ecdsa"
  ssh-keygen -q -t rsa -b 2048 -N 'opskit-pass' -f "$_sshd_dir/client_rsa"
  cat "$_sshd_dir"/client_*.pub >"$_sshd_dir/authorized_keys"
  chmod 644 "$_sshd_dir/authorized_keys"
  chmod 600 "$_sshd_dir"/client_ed25519 "$_sshd_dir"/client_ecdsa "$_sshd_dir"/client_rsa

  _sshd_user="opskit-t$$"
  _sshd_password="pw-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  useradd -m -s /bin/bash "$_sshd_user"
  echo "$_sshd_user:$_sshd_password" | chpasswd
  # sudo for the test user, with its password asked every time (so `--sudo` really sends one).
  _sshd_sudoers=""
  if [ -x /usr/bin/sudo ]; then
    mkdir -p /etc/sudoers.d
    _sshd_sudoers="/etc/sudoers.d/opskit-test-$$"
    printf 'Defaults:%s timestamp_timeout=0, passwd_tries=3\n%s ALL=(ALL:ALL) ALL\n' \
      "$_sshd_user" "$_sshd_user" >"$_sshd_sudoers.tmp"
    chmod 440 "$_sshd_sudoers.tmp"
    if visudo -c -q -f "$_sshd_sudoers.tmp" && mv "$_sshd_sudoers.tmp" "$_sshd_sudoers"; then
      export OPSKIT_TEST_SSHD_SUDO=1
    else
      rm -f "$_sshd_sudoers.tmp"
      _sshd_sudoers=""
      echo "sshd: could not install the sudo rule for $_sshd_user; the --sudo tests will skip (and fail under CI=true)" >&2
    fi
  fi

  _sshd_ports=""
  for _i in 1 2 3; do _sshd_ports="$_sshd_ports $(free_port)"; done
  _sshd_ports="${_sshd_ports# }"
  {
    for _p in $_sshd_ports; do echo "Port $_p"; done
    cat <<CONF
ListenAddress 127.0.0.1
HostKey $_sshd_dir/host_ed25519
HostCertificate $_sshd_dir/host_ed25519-cert.pub
PidFile $_sshd_dir/sshd.pid
AuthorizedKeysFile $_sshd_dir/authorized_keys
PermitRootLogin yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
MaxStartups 200:30:400
MaxSessions 50
Subsystem sftp internal-sftp
AcceptEnv OPSKIT_*
CONF
  } >"$_sshd_dir/sshd_config"
  /usr/sbin/sshd -D -e -f "$_sshd_dir/sshd_config" 2>"$_sshd_dir/sshd.log" &
  _sshd_pid=$!

  _sshd_stop() {
    kill "$_sshd_pid" 2>/dev/null || true
    wait "$_sshd_pid" 2>/dev/null || true
    userdel -f -r "$_sshd_user" 2>/dev/null || true
    if [ -n "$_sshd_sudoers" ]; then rm -f "$_sshd_sudoers"; fi
  }
  on_exit _sshd_stop

  # Wait (with a deadline) until every port answers with an SSH banner.
  for _p in $_sshd_ports; do
    for _try in $(seq 1 100); do
      if python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',$_p),1); sys.exit(0 if s.recv(4).startswith(b'SSH-') else 1)" 2>/dev/null; then
        break
      fi
      if [ "$_try" = 100 ]; then echo "sshd did not start on port $_p:" >&2; cat "$_sshd_dir/sshd.log" >&2; exit 1; fi
      sleep 0.1
    done
  done

  export OPSKIT_TEST_SSHD_PORTS="$_sshd_ports"
  export OPSKIT_TEST_SSHD_PORT="${_sshd_ports%% *}"
  OPSKIT_TEST_SSHD_HOST_PUB="$(cat "$_sshd_dir/host_ed25519.pub")"
  export OPSKIT_TEST_SSHD_HOST_PUB
  OPSKIT_TEST_SSHD_HOST_CA_PUB="$(cat "$_sshd_dir/host_ca.pub")"
  export OPSKIT_TEST_SSHD_HOST_CA_PUB
  export OPSKIT_TEST_SSH_USER="$_sshd_user"
  export OPSKIT_TEST_SSH_PASSWORD="$_sshd_password"
  export OPSKIT_TEST_SSH_KEY="$_sshd_dir/client_ed25519"
  export OPSKIT_TEST_SSH_KEY_ECDSA="$_sshd_dir/client_ecdsa"
  export OPSKIT_TEST_SSH_KEY_RSA="$_sshd_dir/client_rsa"
  export OPSKIT_TEST_SSH_KEY_PASSPHRASE="opskit-pass"
  export OPSKIT_TEST_SSHD_ACCEPT_ENV='OPSKIT_*'
  echo "sshd on 127.0.0.1 ports $_sshd_ports, test user $_sshd_user"
else
  echo "sshd: not started (needs /usr/sbin/sshd and root); the SSH tests will skip, or fail under CI=true" >&2
fi
