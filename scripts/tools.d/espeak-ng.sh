# eSpeak NG (formant text-to-speech) and its C library, from Debian's packages. Needs root (or
# passwordless sudo) the first time.
ESPEAK_NG_PACKAGES="espeak-ng libespeak-ng-dev"

aimesh_install_espeak_ng() {
  if command -v espeak-ng >/dev/null && espeak-ng --voices 2>/dev/null | grep -w en-us >/dev/null; then
    return 0
  fi
  aimesh_tools_log "installing $ESPEAK_NG_PACKAGES"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null && \
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $ESPEAK_NG_PACKAGES >/dev/null
}
