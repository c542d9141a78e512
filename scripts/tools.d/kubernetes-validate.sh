# kubernetes-validate (checks manifests against the Kubernetes OpenAPI schemas it bundles, offline),
# from PyPI.
KUBERNETES_VALIDATE_VERSION=1.37.0

aimesh_install_kubernetes_validate() {
  local venv="$AIMESH_TOOLS/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
  if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    aimesh_tools_log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION"
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" || return 1
  fi
  export PATH="$venv/bin:$PATH"
}
