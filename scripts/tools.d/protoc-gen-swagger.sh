# protoc-gen-swagger (grpc-gateway's OpenAPI/Swagger 2.0 generator: the REST surface from the
# protos' google.api.http rules and comments), from Debian's golang-grpc-gateway package. The
# package is downloaded and unpacked into the cache (`apt-get download`, `dpkg -x`), not installed.
GRPC_GATEWAY_DEB_VERSION=1.6.4-2+b23

aimesh_install_protoc_gen_swagger() {
  local dir="$AIMESH_TOOLS/protoc-gen-swagger-$GRPC_GATEWAY_DEB_VERSION"
  if [ ! -x "$dir/bin/protoc-gen-swagger" ]; then
    aimesh_tools_log "installing protoc-gen-swagger (golang-grpc-gateway $GRPC_GATEWAY_DEB_VERSION)"
    local tmp
    tmp="$(mktemp -d)" || return 1
    # A fresh machine may not have the package lists yet.
    if ! (cd "$tmp" && apt-get download -qq "golang-grpc-gateway=$GRPC_GATEWAY_DEB_VERSION" >/dev/null 2>&1); then
      local sudo=""
      [ "$(id -u)" -eq 0 ] || sudo="sudo"
      $sudo apt-get update -qq >/dev/null \
        && (cd "$tmp" && apt-get download -qq "golang-grpc-gateway=$GRPC_GATEWAY_DEB_VERSION" >/dev/null) \
        || { rm -rf "$tmp"; return 1; }
    fi
    dpkg -x "$tmp"/golang-grpc-gateway_*.deb "$tmp/root" \
      && install -D -m 0755 "$tmp/root/usr/bin/protoc-gen-swagger" "$dir/bin/protoc-gen-swagger"
    local status=$?
    rm -rf "$tmp"
    [ "$status" -eq 0 ] || return 1
  fi
  export PATH="$dir/bin:$PATH"
}
