#!/usr/bin/env bash
# The README's two commands on a fresh machine, for real: a minimal Debian root made with
# debootstrap (only python3, python3-venv, make, git), this repository cloned into it, and
# `make test` + `make demo` run
#   - as root with the clone in /root            (case "root"), and
#   - as a normal user made by adduser, no sudo  (case "user", home folder 0700).
# Each case starts from its own fresh copy of the root. Downloads (pip, and apt as root) run
# with the network; the tests and the demo then run in a private network namespace, so no
# service of this machine (its PostgreSQL on 5432, its Mosquitto on 1883) can help.
#
# Needs: root, debootstrap, unshare (util-linux), the Debian mirror and PyPI reachable.
# Not part of `make test`. See README "Checking a fresh machine".
#
#   sudo scripts/fresh-machine.sh [root|user|all]       (default: all)
#
# Settings (environment):
#   DAON_FRESH_DIR       work folder (default /var/tmp/daon-fresh; the base root is cached there)
#   DAON_FRESH_SUITE     Debian suite (default bookworm)
#   DAON_FRESH_MIRROR    Debian mirror (default: the first deb.debian.org-style URI of this
#                        machine's apt sources, else http://deb.debian.org/debian)
#   DAON_FRESH_DEMO_S    how long the demo runs before it is checked and stopped (default 150)
#   DAON_FRESH_PYTEST    extra pytest arguments for `make test` (default: none)
#   DAON_FRESH_STEPS     which steps to run: "test demo" (default), or one of them
#   DAON_FRESH_REUSE=1   keep a case's root from an earlier run (only the clone is updated)
# Exit status 0 when every case passed; the logs stay in $DAON_FRESH_DIR/<case>/.
set -euo pipefail

main() {  # all in a function: bash has read the whole file before it runs, so edits are safe
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
work=${DAON_FRESH_DIR:-/var/tmp/daon-fresh}
suite=${DAON_FRESH_SUITE:-bookworm}
demo_s=${DAON_FRESH_DEMO_S:-150}
steps=${DAON_FRESH_STEPS:-test demo}
cases=${1:-all}
[ "$cases" = all ] && cases="root user"

die() { echo "fresh-machine: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, network namespaces)"
command -v debootstrap >/dev/null || die "debootstrap is not installed: apt-get install debootstrap"
command -v unshare >/dev/null || die "unshare (util-linux) is not installed"

mirror=${DAON_FRESH_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(grep -rhoE '(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list \
    /etc/apt/sources.list.d/ 2>/dev/null | grep -oE 'https?://[^ ]+' | head -1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
fi

mkdir -p "$work"
base="$work/base-$suite.tar"
if [ ! -f "$base" ]; then
  echo "== building a minimal $suite root from $mirror (once; cached in $base)"
  rm -rf "$work/base-root"
  debootstrap --variant=minbase \
    --include=python3,python3-venv,make,git,ca-certificates,adduser \
    "$suite" "$work/base-root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log"; die "debootstrap failed (log: $work/debootstrap.log)"; }
  tar -C "$work/base-root" -cf "$base.partial" . && mv "$base.partial" "$base"
  rm -rf "$work/base-root"
fi

# The driver that runs inside the fresh root: `inside <case> <phase>`.
read -r -d '' inside <<'INSIDE' || true
#!/bin/bash
# Runs inside the fresh root (written by scripts/fresh-machine.sh).
set -uo pipefail
case_=$1 phase=$2
if [ "$case_" = root ]; then clone=/root/daon; else clone=/home/tester/daon; fi
as() {  # run a shell command in the clone as the case's user (same session: signals reach it)
  if [ "$case_" = root ]; then
    (cd "$clone" && bash -c "$1")
  else
    runuser -u tester -- env HOME=/home/tester USER=tester LOGNAME=tester \
      bash -c "cd $clone && $1"
  fi
}
case $phase in
  install)  # with the network: the venv (pip), and as root the system packages (apt)
    as "make .venv/.installed" || exit 1
    [ "$case_" = root ] && { as "make system-deps" || exit 1; }
    exit 0 ;;
  test)
    as "make test PYTEST_ARGS='${DAON_FRESH_PYTEST:-}'" 2>&1 | tee /fresh-test.log
    status=${PIPESTATUS[0]}
    left=$(ls -d /tmp/daon-test-* 2>/dev/null | wc -l)
    echo "files left in /tmp by the tests: $left"
    [ "$left" -eq 0 ] || status=1
    grep -Eq '[0-9]+ passed' /fresh-test.log || status=1
    grep -Eq '[0-9]+ (failed|errors?)' /fresh-test.log && status=1
    exit "$status" ;;
  demo)
    log=/fresh-demo.log
    setsid bash -c "$(declare -f as); case_=$case_ clone=$clone; as 'exec make demo'" \
      >"$log" 2>&1 &
    echo $! >/fresh-demo.pid
    pid=$(cat /fresh-demo.pid)
    for _ in $(seq 1 600); do grep -q "Daon demo is running" "$log" && break; sleep 1; done
    grep -q "Daon demo is running" "$log" || { echo "no banner"; cat "$log"; kill -INT -- -"$pid"; exit 1; }
    echo "banner after $(( $(date +%s) - $(stat -c %Y /fresh-demo.pid) )) s"
    sleep "${DAON_FRESH_DEMO_S:-150}"
    as ".venv/bin/daon status --json" | tee /fresh-status.json
    status=0
    python3 - <<'PY' || status=1
import json, sys
counts = json.load(open("/fresh-status.json"))["counts"]
print(f"observations {counts.get('observations')}, open flags {counts.get('open_flags')}")
sys.exit(0 if (counts.get("observations") or 0) > 0 and (counts.get("open_flags") or 0) > 0 else 1)
PY
    kill -INT -- -"$pid"
    for _ in $(seq 1 90); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && { echo "the demo did not stop within 90 s"; status=1; kill -KILL -- -"$pid"; }
    grep -q "Demo stopped; data kept" "$log" || { echo "no clean stop message"; status=1; }
    if grep -qE "Traceback|exception was never retrieved" "$log"; then
      echo "tracebacks in the demo's output:"; grep -nE -A3 "Traceback|never retrieved" "$log" | head -40
      status=1
    fi
    grep -E "BLE:|WARNING|warning" "$log" | head -20
    exit "$status" ;;
esac
INSIDE

run_in() {  # run_in <root> <net|nonet> <command...>: chroot with /proc, /dev, /sys mounted
  local root=$1 net=$2; shift 2
  local flags=(--mount --propagation private)
  [ "$net" = nonet ] && flags+=(--net)
  unshare "${flags[@]}" bash -c '
    root=$1; shift
    ip link set lo up 2>/dev/null || true
    mount -t proc proc "$root/proc" && mount --rbind /dev "$root/dev" && mount -t sysfs sys "$root/sys"
    exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
      LANG=C.UTF-8 TERM=dumb DAON_FRESH_PYTEST="${DAON_FRESH_PYTEST:-}" PIP_CERT="${PIP_CERT:-}" \
      DAON_FRESH_DEMO_S="${DAON_FRESH_DEMO_S:-}" chroot "$root" "$@"
  ' _ "$root" "$@"
}

overall=0
for case_ in $cases; do
  dir="$work/$case_"
  root="$dir/root"
  if [ "${DAON_FRESH_REUSE:-0}" = 1 ] && [ -f "$dir/installed" ]; then
    echo "== case $case_: reusing $root (clone updated to this repository's HEAD)"
    clone=$root/root/daon; [ "$case_" = user ] && clone=$root/home/tester/daon
    git -c safe.directory="*" -C "$clone" fetch -q "$repo" HEAD \
      && git -c safe.directory="*" -C "$clone" reset -q --hard FETCH_HEAD \
      || die "could not update the clone in $clone"
    [ "$case_" = user ] && chroot "$root" chown -R tester:tester /home/tester/daon
    printf '%s\n' "$inside" >"$root/usr/local/bin/daon-fresh-inside"
  else
  echo "== case $case_: a fresh root in $root"
  rm -rf "$dir" && mkdir -p "$root"
  tar -C "$root" -xf "$base"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # pip trusts what this machine trusts (a network may reach PyPI through a TLS proxy).
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/fresh-machine-host-ca.crt"
  # As in a container: packages installed here must not start services (no init runs).
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  printf '%s\n' "$inside" >"$root/usr/local/bin/daon-fresh-inside"
  chmod 755 "$root/usr/local/bin/daon-fresh-inside"
  if [ "$case_" = root ]; then
    git clone -q --no-hardlinks "$repo" "$root/root/daon"
  else
    chroot "$root" adduser --disabled-password --gecos "" tester >/dev/null
    echo "   home: $(chroot "$root" stat -c '%A %U' /home/tester)"
    git clone -q --no-hardlinks "$repo" "$root/home/tester/daon"
    chroot "$root" chown -R tester:tester /home/tester/daon
  fi
  fi
  echo "== case $case_: install (with the network; a reused root only catches up)"
  PIP_CERT=/etc/ssl/certs/fresh-machine-host-ca.crt \
    run_in "$root" net daon-fresh-inside "$case_" install >"$dir/install.log" 2>&1 \
    || { tail -n 30 "$dir/install.log"; echo "FAIL $case_ install"; overall=1; continue; }
  tail -n 8 "$dir/install.log"
  touch "$dir/installed"
  clone=$root/root/daon; [ "$case_" = user ] && clone=$root/home/tester/daon
  echo "   commit $(git -c safe.directory='*' -C "$clone" rev-parse --short HEAD)"
  for step in $steps; do
    echo "== case $case_: $step (no network)"
    start=$(date +%s)
    if run_in "$root" nonet daon-fresh-inside "$case_" "$step" >"$dir/$step.log" 2>&1; then
      result=PASS
    else
      result=FAIL; overall=1
    fi
    tail -n 12 "$dir/$step.log"
    echo "$result $case_ $step ($(( $(date +%s) - start )) s; log: $dir/$step.log)"
  done
done
exit "$overall"
}

main "$@"
