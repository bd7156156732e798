#!/usr/bin/env bash
# Find or install the system programs Daon uses. Never fails the build: what cannot be had is
# reported, and the tests or demo parts that need it say so and skip.
set -u
need=()
command -v dbus-daemon >/dev/null 2>&1 || need+=(dbus-daemon)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
if [ -n "${DAON_BROWSER_TESTS:-1}" ] && [ "${DAON_BROWSER_TESTS:-1}" != 0 ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! (apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1; }); then
    echo "could not install ${need[*]} with apt-get; tests needing them will be skipped"
  fi
else
  echo "missing system programs: ${need[*]} (install them with your package manager, e.g."
  echo "  sudo apt-get install ${need[*]}); tests needing them will be skipped"
fi
exit 0
