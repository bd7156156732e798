#!/usr/bin/env bash
# Find or install the system programs Daon uses. Never fails the build: what cannot be had is
# reported with what it costs, and the demo or tests that need it say so and skip.
#
#   dbus-daemon     the virtual BlueZ (the demo's BLE devices, the BLE tests)
#   mosquitto       the MQTT broker (without it: Daon's own fallback broker, daon/broker_fallback.py)
#   chromium        headless browser tests (DAON_BROWSER_TESTS=0 leaves it out)
#   fonts-noto-cjk  Korean text in the browser and on a kiosk's screen (else empty boxes)
#   etcd-server, nats-server
#                   the high-availability tier (tests/ha, bench/ha.py): Patroni's etcd and a
#                   NATS cluster (DAON_HA_TESTS=0 leaves them out)
#
# As root with apt-get they are installed (output in .venv/system-deps.log); otherwise the
# script lists the command to run once as root.
set -u
need=()
why=()
command -v dbus-daemon >/dev/null 2>&1 || {
  need+=(dbus-daemon); why+=("dbus-daemon: the demo's BLE devices are off and the BLE tests skip"); }
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || {
  need+=(mosquitto); why+=("mosquitto: Daon's fallback broker is used instead (works the same for the demo and tests)"); }
if [ -n "${DAON_BROWSER_TESTS:-1}" ] && [ "${DAON_BROWSER_TESTS:-1}" != 0 ]; then
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || {
    need+=(chromium); why+=("chromium: the browser tests skip"); }
fi
if [ -n "${DAON_HA_TESTS:-1}" ] && [ "${DAON_HA_TESTS:-1}" != 0 ]; then
  command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || {
    need+=(etcd-server); why+=("etcd-server: the HA tier (tests/ha) skips"); }
  command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || {
    need+=(nats-server); why+=("nats-server: the HA tier (tests/ha) skips"); }
fi
has_cjk_font() {
  if command -v dpkg-query >/dev/null 2>&1 \
     && dpkg-query -W -f='${Status}' fonts-noto-cjk 2>/dev/null | grep -q 'install ok installed'; then
    return 0
  fi
  command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=ko 2>/dev/null | head -1)" ]
}
has_cjk_font || { need+=(fonts-noto-cjk); why+=("fonts-noto-cjk: Korean shows as empty boxes in the browser"); }
[ ${#need[@]} -eq 0 ] && exit 0

log=.venv/system-deps.log
mkdir -p .venv
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages with apt-get (a few minutes the first time; log: $log):"
  echo "  ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if apt-get install -y -q --no-install-recommends "${need[@]}" >"$log" 2>&1 \
     || { apt-get update -q >>"$log" 2>&1 \
          && apt-get install -y -q --no-install-recommends "${need[@]}" >>"$log" 2>&1; }; then
    echo "  installed: $(grep -c '^Setting up' "$log") packages"
  else
    echo "could not install them with apt-get (last lines of $log):"
    tail -n 5 "$log" | sed 's/^/  /'
    printf '  without %s\n' "${why[@]}"
  fi
else
  echo "system packages not installed (needs root): ${need[*]}"
  printf '  without %s\n' "${why[@]}"
  echo "  to install them once: sudo apt-get install --no-install-recommends ${need[*]}"
fi
exit 0
