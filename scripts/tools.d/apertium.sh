# Apertium (rule-based machine translation) and the English<->Spanish pair, from Debian's
# packages. Needs root (or passwordless sudo) the first time.
APERTIUM_PACKAGES="apertium apertium-eng-spa"

aimesh_install_apertium() {
  if command -v apertium >/dev/null && apertium -l 2>/dev/null | grep -w eng-spa >/dev/null; then
    return 0
  fi
  aimesh_tools_log "installing $APERTIUM_PACKAGES"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null && \
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $APERTIUM_PACKAGES >/dev/null
}
