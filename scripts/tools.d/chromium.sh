# Chromium (headless), which the browser app's tests drive with playwright-core, from Debian's
# packages. Needs root (or passwordless sudo) the first time. Exports AIMESH_CHROMIUM.

aimesh_install_chromium() {
  local bin
  bin="$(command -v chromium || command -v chromium-browser || true)"
  if [ -z "$bin" ]; then
    aimesh_tools_log "installing chromium"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >/dev/null && \
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null || return 1
    bin="$(command -v chromium)"
  fi
  export AIMESH_CHROMIUM="${AIMESH_CHROMIUM:-$bin}"
}
