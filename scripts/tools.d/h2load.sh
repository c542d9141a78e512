# h2load (nghttp2's HTTP/2 load generator; the edge benchmark drives it), from Debian's packages.
# Needs root (or passwordless sudo) the first time.
H2LOAD_PACKAGES="nghttp2-client"

aimesh_install_h2load() {
  if command -v h2load >/dev/null; then
    return 0
  fi
  aimesh_tools_log "installing $H2LOAD_PACKAGES"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null && \
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $H2LOAD_PACKAGES >/dev/null
}
