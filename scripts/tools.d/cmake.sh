# CMake and make, from Debian's packages: the build of the libopus and LAME sources the Opus and
# MP3 crates carry (statically linked into aimesh). Needs root (or passwordless sudo) the first
# time.
CMAKE_PACKAGES="cmake make"

aimesh_install_cmake() {
  if command -v cmake >/dev/null && command -v make >/dev/null; then
    return 0
  fi
  # shellcheck disable=SC2086
  aimesh_apt_install $CMAKE_PACKAGES
}
