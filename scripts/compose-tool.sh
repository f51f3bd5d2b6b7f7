#!/usr/bin/env bash
# Install docker-compose 1.29.2 from PyPI into a venv of its own and print the path of its
# executable. `docker-compose config` validates docker-compose.yml without a Docker engine,
# which this project's machines do not have (SPEC section 5).
#
# Why a venv of its own: docker-compose 1.29.2 needs PyYAML<6, jsonschema<4, docker 5 and
# websocket-client<1, which conflict with the project's venv.
# Why this recipe: no PyYAML<6 has a wheel for Python 3.11, and the 5.4.1 sdist does not build
# under pip's build isolation, which brings Cython 3 ("'build_ext' object has no attribute
# 'cython_sources'"). So the build tools, with Cython<3, are installed first and every sdist
# (PyYAML, docopt, dockerpty) is built with --no-build-isolation against them.
# The pins are the set this recipe was tested with on CPython 3.11: docker 5.0.3 is the docker-py
# that docker-compose 1.29.2 was released with (its metadata accepts any docker>=5, and docker 7
# breaks it), requests<2.32 and urllib3<2 are what docker 5 works with.
#
# Idempotent: a finished install leaves a stamp holding its recipe; a later run with the same
# recipe only prints the path, while an unfinished install or another recipe is wiped and redone.
#
# Usage: scripts/compose-tool.sh
#   PYTHON            interpreter for the venv (default python3; CPython 3.8 to 3.11, because
#                     docker-compose 1.29.2 imports distutils, which Python 3.12 removed)
#   COMPOSE_TOOL_DIR  where the venv goes (default <repo>/.pokazy/tools/compose)
# Stdout is the executable's path and nothing else; progress and errors go to stderr.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tool_dir="${COMPOSE_TOOL_DIR:-$root/.pokazy/tools/compose}"
python="${PYTHON:-python3}"

build_tools=(setuptools==65.5.0 wheel==0.45.1 Cython==0.29.37)
packages=(
    docker-compose==1.29.2
    PyYAML==5.4.1
    docker==5.0.3
    jsonschema==3.2.0
    attrs==26.1.0
    pyrsistent==0.20.0
    six==1.17.0
    requests==2.31.0
    urllib3==1.26.20
    idna==3.20
    certifi==2026.10.19.post1
    charset-normalizer==3.5.2
    websocket-client==0.59.0
    python-dotenv==0.21.1
    texttable==1.7.2
    distro==1.9.0
    docopt==0.6.2
    dockerpty==0.4.1
    packaging==26.3
    # docker[ssh], which docker-compose requires: paramiko and its native dependencies.
    paramiko==5.1.0
    invoke==3.0.3
    bcrypt==5.0.0
    cryptography==50.0.2
    cffi==2.1.1
    pycparser==3.12
    PyNaCl==1.6.2
)

log() { echo "compose-tool: $*" >&2; }

if ! python_version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"; then
    log "cannot run the interpreter '$python' (set PYTHON)"
    exit 1
fi
case "$python_version" in
    3.8 | 3.9 | 3.10 | 3.11) ;;
    *)
        log "docker-compose 1.29.2 needs CPython 3.8 to 3.11, '$python' is $python_version (set PYTHON)"
        exit 1
        ;;
esac

recipe="python $python_version; build tools ${build_tools[*]}; packages ${packages[*]}"
stamp="$tool_dir/.pokazy-recipe"
executable="$tool_dir/bin/docker-compose"

mkdir -p "$(dirname "$tool_dir")"
# Two concurrent callers (a test run and `make`) must not install over each other.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$tool_dir.lock"
    flock 9
fi

# The venv's interpreter is checked too: it links to the base Python, which may have moved.
if [[ -x "$executable" && -f "$stamp" && "$(cat "$stamp")" == "$recipe" ]] \
    && "$tool_dir/bin/python" -c '' 2>/dev/null; then
    echo "$executable"
    exit 0
fi

log "installing docker-compose 1.29.2 into $tool_dir (first run: about half a minute)"
rm -rf "$tool_dir"
# On any failure below, leave nothing that a later run could take for a finished install.
trap 'rm -rf "$tool_dir"; log "install failed"' ERR

"$python" -m venv "$tool_dir"
pip=("$tool_dir/bin/python" -m pip install --disable-pip-version-check --no-input --quiet)
"${pip[@]}" "${build_tools[@]}" >&2
"${pip[@]}" --no-build-isolation "${packages[@]}" >&2
"$executable" version >&2

trap - ERR
echo "$recipe" >"$stamp"
echo "$executable"
