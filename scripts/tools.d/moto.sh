# moto's server mode: an S3 API emulator (the S3 blob store's tests and `scripts/s3-server`),
# from PyPI.
MOTO_VERSION=5.2.5

aimesh_install_moto() {
  local venv="$AIMESH_TOOLS/moto-$MOTO_VERSION"
  if ! "$venv/bin/moto_server" --help >/dev/null 2>&1; then
    aimesh_tools_log "installing moto $MOTO_VERSION"
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "moto[server]==$MOTO_VERSION" || return 1
  fi
  export PATH="$venv/bin:$PATH"
}
