# CMake and make, from Debian's packages: the build of the libopus and LAME sources the Opus and
# MP3 crates carry (statically linked into aimesh). Needs root (or passwordless sudo) the first
# time.
CMAKE_PACKAGES="cmake make"

aimesh_install_cmake() {
  if command -v cmake >/dev/null && command -v make >/dev/null; then
    return 0
  fi
  aimesh_tools_log "installing $CMAKE_PACKAGES"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null && \
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $CMAKE_PACKAGES >/dev/null
}
