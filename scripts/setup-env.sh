# Shared by scripts/test and scripts/demo: apt installs and the virtualenv.
apt_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

setup_venv() {
  local python="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    if ! "$python" -m venv .venv >/dev/null 2>&1; then
      rm -rf .venv
      apt_install python3-venv
      "$python" -m venv .venv
    fi
  fi
  # Install (editable, with the test extra) only when it is needed: a new venv, pyproject.toml
  # changed (dependencies, entry points), the checkout moved, or the install is gone. Source
  # changes need none: the install is editable. The stamp is written only after pip succeeded.
  local stamp=.venv/.dcmtools-installed want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1) $PWD"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -x .venv/bin/dcmtools ]; then
    rm -f "$stamp"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
    printf '%s\n' "$want" >"$stamp"
  fi
}
