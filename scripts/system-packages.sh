#!/usr/bin/env bash
# The Debian packages that `npm start` and `npm test` need, installed when missing.
#
#   bash scripts/system-packages.sh           # what the tests need: check, install what is missing
#   bash scripts/system-packages.sh --start   # what `npm start` needs (java) only
#   bash scripts/system-packages.sh --check   # check only: list what is missing, exit 1 if any
#
# `npm test` and `npm start` run it first (package.json's pretest and prestart); .ci/run runs it
# before `npm ci` (a fresh machine may have no npm).
# As root it installs the missing packages (apt-get update first); as another user it uses sudo
# when sudo needs no password; otherwise it prints exactly which packages are missing and the
# command that installs them, and exits 1. Nothing runs apt-get when everything is present.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

check_only=
start_only=
for arg in "$@"; do
  case "$arg" in
    --check) check_only=1 ;;
    --start) start_only=1 ;;
    *)
      echo "usage: $0 [--start] [--check]" >&2
      exit 2
      ;;
  esac
done

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  if [ -n "$start_only" ]; then
    command -v java >/dev/null 2>&1 || log "npm start needs java (17+) for DynamoDB Local; install a JRE"
    exit 0
  fi
  log "not a Debian system: cannot check packages. The tests need java (17+), npm, pgrep, ipmi_sim and"
  log "ipmitool (OpenIPMI), redfishtool, openssl, /usr/sbin/sshd (OpenSSH), wget, curl, tar and the"
  log "Python clients python-blazarclient, python-saharaclient and python-ironicclient for /usr/bin/python3."
  log "The web console's browser test needs Chromium at /usr/bin/chromium."
  exit 0
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
# DynamoDB Local (npm start and the test stacks) runs on java; any JRE 17+ will do.
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
if [ -z "$start_only" ]; then
  # npm itself (a fresh machine may have no Node at all; Node 22 then comes from node_modules).
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  # pgrep (procps) for the local-stack tests, the simulated BMCs (ipmi_sim) and the IPMI client,
  # redfishtool (checks our Redfish simulator), openssl (throwaway TLS certificates),
  # the real upstream clients that the contract tests drive, and the tools a deploying node
  # uses to fetch and unpack its bootdata (wget, curl, tar: the Drydock deploy tests).
  for pkg in procps openipmi ipmitool redfishtool openssl python3-blazarclient python3-saharaclient python3-ironicclient wget curl tar; do
    installed "$pkg" || missing+=("$pkg")
  done
  # `openstack` (Keystone sign-in with clouds.yaml, test/contract/keystone.test.ts; its
  # reservation and baremetal commands come from the two client packages above).
  installed python3-openstackclient || missing+=(python3-openstackclient)
  # The SSH agent tests start their own sshd (test/support/sshd.ts) on loopback; the package's
  # system service is not wanted and is kept from starting below.
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  # The VM-backed machine tests (test/agent/vm-*.test.ts): QEMU (TCG) with iPXE for network boot,
  # the cloud kernel and a static busybox that `npm run ramdisk` packs into the inspect ramdisk,
  # cpio to pack it, e2fsprogs for disk images, socat behind QEMU's guestfwd; dnsmasq only to
  # check the agent's generated proxy-DHCP config (`dnsmasq --test`; its service is not started).
  for pkg in qemu-system-x86 ipxe-qemu linux-image-cloud-amd64 busybox-static e2fsprogs socat cpio dnsmasq; do
    installed "$pkg" || missing+=("$pkg")
  done
  # The web console's browser test (test/ui/): Debian's headless Chromium, driven by
  # playwright-core, which downloads no browser of its own.
  installed chromium || missing+=(chromium)
fi

if [ "${#missing[@]}" -eq 0 ]; then
  [ -n "$start_only" ] || log "system packages present"
  exit 0
fi

install_cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
explain() {
  {
    echo "error: missing Debian packages: ${missing[*]}"
    echo "Install them as root with:"
    echo "  sudo sh -c '$install_cmd'"
    echo "or let this script do it (as root it keeps the packages' services from starting):"
    echo "  sudo bash $here/system-packages.sh${start_only:+ --start}"
    case " ${missing[*]} " in
      *' openssh-server '*)
        echo "(openssh-server is only for the tests' own sshd on loopback; installed with apt-get alone"
        echo " it also starts the system's sshd on port 22.)"
        ;;
    esac
  } >&2
}

if [ -n "$check_only" ]; then
  explain
  exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    explain
    echo "(not root, and sudo is not available without a password: nothing was installed)" >&2
    exit 1
  fi
fi

log "installing: ${missing[*]}"
# Packages' maintainer scripts must not start services (openssh-server would start a system
# sshd on port 22, and fail the install where there is no init): a policy-rc.d that denies
# every start (exit 101), only for this install, unless the machine has one already (Docker).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  trap '"${SUDO[@]}" rm -f "$policy"' EXIT
  printf '#!/bin/sh\n# Written by scripts/system-packages.sh for the duration of apt-get install\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod 755 "$policy"
fi
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
log "installed: ${missing[*]}"
