# Apertium (rule-based machine translation) and the English<->Spanish pair, from Debian's
# packages. Needs root (or passwordless sudo) the first time.
APERTIUM_PACKAGES="apertium apertium-eng-spa"

aimesh_install_apertium() {
  if command -v apertium >/dev/null && apertium -l 2>/dev/null | grep -w eng-spa >/dev/null; then
    return 0
  fi
  # shellcheck disable=SC2086
  aimesh_apt_install $APERTIUM_PACKAGES
}
