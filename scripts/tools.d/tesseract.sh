# Tesseract (OCR engine) with its English model, from Debian's packages. Needs root (or
# passwordless sudo) the first time.
TESSERACT_PACKAGES="tesseract-ocr tesseract-ocr-eng"

aimesh_install_tesseract() {
  if command -v tesseract >/dev/null && tesseract --list-langs 2>/dev/null | grep -x eng >/dev/null; then
    return 0
  fi
  # shellcheck disable=SC2086
  aimesh_apt_install $TESSERACT_PACKAGES
}
