# shellcheck shell=bash
# Shared by tools/demo and tools/test: install what is missing from Debian's archive, then build.
# Sourced, not run. Expects to be called from the repository root, as root.

PORTCULLIS_PACKAGES=(
    # toolchain and build
    g++ meson ninja-build pkg-config
    # libraries (the design card's list)
    libdpdk-dev dpdk dpdk-dev libhyperscan-dev libboost-program-options-dev libspdlog-dev libfmt-dev
    libroaring-dev libgtest-dev nlohmann-json3-dev
    # store = etcd: etcd's JSON gateway over libcurl; base64 from OpenSSL; a real etcd for the fleet tests
    libcurl4-openssl-dev libssl-dev etcd-server etcd-client
    # observability: /metrics (prometheus-cpp), promtool to check it (prometheus), systemd's notify protocol,
    # the event stream's schema checked in the tests
    prometheus-cpp-dev prometheus libsystemd-dev python3-jsonschema curl
    # the approval's DNS check: c-ares; a real DNS server for its test
    libc-ares-dev dnsmasq-base
    # the HTTP API: Boost.Beast comes with libboost-dev (program-options-dev pulls it); openssl makes the
    # tests' certificate; PyYAML reads docs/api.yaml in the lint suite
    openssl python3-yaml
    # the lab: namespaces, offload switches, captures, real mail tools
    iproute2 ethtool tcpdump procps swaks libio-socket-inet6-perl libnet-ssleay-perl libio-socket-ssl-perl
    openssl postfix
    python3 python3-aiosmtpd python3-pytest python3-scapy
    # lint for the shell scripts
    shellcheck
    # fuzzing (tools/fuzz): clang, libFuzzer and the sanitizer runtimes, llvm-symbolizer for readable stacks
    clang libclang-rt-14-dev llvm-14
)

die() {
    echo "error: $*" >&2
    exit 1
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "run as root: the lab creates network namespaces and DPDK needs raw sockets"
}

ensure_packages() {
    local missing=()
    local pkg
    for pkg in "${PORTCULLIS_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "== installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # postfix is here for its smtp-source/smtp-sink tools: install it without a mail configuration.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -q >/dev/null
    # No package's own service starts (etcd-server's etcd.service would listen on 2379 for good): the tests
    # start what they need on ports of their own. A policy-rc.d of ours says so for the length of the install;
    # one the machine has stays as it is, and ours left by a killed run is removed first.
    local policy=/usr/sbin/policy-rc.d mark="portcullis tools/lib/setup.sh" own=0 rc=0
    if [ -e "$policy" ] && grep -q "$mark" "$policy"; then rm -f "$policy"; fi
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# %s: no service starts during this install\nexit 101\n' "$mark" >"$policy"
        chmod 755 "$policy"
        own=1
    fi
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
    if [ "$own" -eq 1 ]; then rm -f "$policy"; fi
    return "$rc"
}

# build DIR [MESON OPTIONS...]: configure (warnings are errors) if needed, then compile.
build_project() {
    local dir=$1
    shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" --werror "$@" >/dev/null || die "meson setup failed"
    fi
    echo "== building in $dir"
    ninja -C "$dir" >"$dir.log" 2>&1 || { tail -50 "$dir.log"; die "build failed (full log: $dir.log)"; }
}
