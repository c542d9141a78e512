# Celery and redis-py (the job-queue peer of the jobs benchmark), from PyPI.
CELERY_VERSION=5.7.0
REDIS_PY_VERSION=8.1.0

aimesh_install_celery() {
  local venv="$AIMESH_TOOLS/celery-$CELERY_VERSION"
  if ! "$venv/bin/python" -c "import celery, redis, packaging" 2>/dev/null; then
    aimesh_tools_log "installing celery $CELERY_VERSION"
    python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "celery==$CELERY_VERSION" "redis==$REDIS_PY_VERSION" "packaging==25.0" || return 1
  fi
  export PATH="$venv/bin:$PATH"
}
