# h2load (nghttp2's HTTP/2 load generator; the edge benchmark drives it), from Debian's packages.
# Needs root (or passwordless sudo) the first time.
H2LOAD_PACKAGES="nghttp2-client"

aimesh_install_h2load() {
  if command -v h2load >/dev/null; then
    return 0
  fi
  # shellcheck disable=SC2086
  aimesh_apt_install $H2LOAD_PACKAGES
}
