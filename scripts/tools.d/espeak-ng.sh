# eSpeak NG (formant text-to-speech) and its C library, from Debian's packages. Needs root (or
# passwordless sudo) the first time.
ESPEAK_NG_PACKAGES="espeak-ng libespeak-ng-dev"

aimesh_install_espeak_ng() {
  if command -v espeak-ng >/dev/null && espeak-ng --voices 2>/dev/null | grep -w en-us >/dev/null; then
    return 0
  fi
  # shellcheck disable=SC2086
  aimesh_apt_install $ESPEAK_NG_PACKAGES
}
