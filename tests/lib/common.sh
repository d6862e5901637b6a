# Shell helpers shared by tests/run-all and tests/demo/setup-and-demo. Source it; do not run it.
#
# Everything here works on a fresh Debian 12 machine: as root, or as a user with sudo.

# Debian packages needed to build and test pg_finetune (FUZZ=1 adds the fuzzing toolchain).
FT_PACKAGES="postgresql-15 postgresql-server-dev-15 libcurl4-openssl-dev libjansson-dev build-essential pkg-config libipc-run-perl python3 postgresql-15-cron chromium"
FT_FUZZ_PACKAGES="clang libclang-rt-14-dev"

# The pg_config of PostgreSQL 15, even when other major versions are installed too.
ft_pg_config() {
	if [ -n "${PG_CONFIG:-}" ]; then
		echo "$PG_CONFIG"
	elif [ -x /usr/lib/postgresql/15/bin/pg_config ]; then
		echo /usr/lib/postgresql/15/bin/pg_config
	else
		echo pg_config
	fi
}

ft_say() { printf '\n==> %s\n' "$*"; }
ft_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, else through sudo.
ft_as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		ft_die "need root (or sudo) to run: $*"
	fi
}

# Installs, with apt-get, whichever of the given Debian packages are missing.
ft_install_packages() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		echo "all required packages are installed"
		return 0
	fi
	ft_say "installing missing packages: ${missing[*]}"
	ft_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
	ft_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Installs the packages the build and tests need.
ft_install_requirements() {
	local pkgs
	# shellcheck disable=SC2206
	pkgs=($FT_PACKAGES)
	if [ "${FUZZ:-0}" = 1 ]; then
		# shellcheck disable=SC2206
		pkgs+=($FT_FUZZ_PACKAGES)
	fi
	ft_install_packages "${pkgs[@]}"
}

# The unprivileged user that runs servers and tests: postgres when we are root
# (PostgreSQL refuses to run as root), else ourselves.
ft_test_user() {
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 || ft_die "user postgres is missing (it comes with the postgresql-15 package)"
		echo postgres
	else
		id -un
	fi
}

# Runs a shell command line as the test user, in the given directory.
ft_as_test_user() {
	local dir=$1
	shift
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- env HOME=/tmp bash -c "cd '$dir' && $*"
	else
		bash -c "cd '$dir' && $*"
	fi
}

# Copies a source tree without build products, VCS data or test leftovers, and puts a link to
# its ../shared beside the copy (some tests read ../shared/data).
ft_copy_tree() {
	local src=$1 dst=$2
	mkdir -p "$dst"
	tar -C "$src" -cf - \
		--exclude=./.git --exclude=./tmp_check --exclude=./tmp_regress --exclude=./tmp_isolation \
		--exclude=./output_iso --exclude=./results --exclude=./log --exclude=./regression.diffs \
		--exclude=./regression.out --exclude=./tests/unit/bin --exclude=./tests/fuzz/bin \
		--exclude=./tests/bench/out --exclude='__pycache__' --exclude='*.o' --exclude='*.so' \
		--exclude='*.bc' --warning=no-file-changed --ignore-failed-read . |
		tar -C "$dst" -xf - || return 1
	if [ -d "$src/../shared" ] && [ ! -e "$dst/../shared" ]; then
		ln -s "$(cd "$src/../shared" && pwd)" "$dst/../shared"
	fi
}

# Builds pg_finetune in a tree and installs it into the PostgreSQL 15 installation.
ft_build_and_install() {
	local dir=$1 pgc
	pgc=$(ft_pg_config)
	(cd "$dir" && make -j"$(nproc)" PG_CONFIG="$pgc") || return 1
	(cd "$dir" && ft_as_root make install PG_CONFIG="$pgc")
}

# A TCP port nobody listens on, from the given start upwards.
ft_free_port() {
	local port=${1:-54329}
	while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
		port=$((port + 1))
	done
	echo "$port"
}
