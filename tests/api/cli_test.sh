#!/usr/bin/env bash
# portcullisctl without a daemon: every command has help, bad usage is one line on stderr and exit 2, an
# unreachable daemon is exit 3. Runs in the CLI-only build too (an operator's workstation).
# Usage: cli_test.sh PATH/TO/portcullisctl
set -u
ctl=$1
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect CODE [LINE-PATTERN] -- ARGS...: exit code CODE; on a non-zero code, exactly one stderr line
# matching LINE-PATTERN.
expect() {
    local code=$1 pattern=$2
    shift 3
    "$ctl" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    local rc=$?
    local lines
    lines=$(wc -l <"$tmp/err")
    if [ "$rc" -ne "$code" ]; then
        echo "FAIL: portcullisctl $*: exit $rc, wanted $code ($(head -c 300 "$tmp/err"))"
        fails=$((fails + 1))
    elif [ "$code" -ne 0 ] && { [ "$lines" -ne 1 ] || ! grep -qE "$pattern" "$tmp/err"; }; then
        echo "FAIL: portcullisctl $*: wanted one stderr line matching '$pattern', got: $(cat "$tmp/err")"
        fails=$((fails + 1))
    fi
}

expect 0 '' -- --help
for c in status stats approve suspend resume revoke unban list show import export managed relay monitor \
    limits rules; do
    grep -qE "^  $c( |$)" "$tmp/out" || { echo "FAIL: --help does not list '$c'"; fails=$((fails + 1)); }
done
for c in $(awk '/^commands:/{on=1; next} on && /^  [a-z]/{print $1}' "$tmp/out"); do
    expect 0 '' -- "$c" --help
    grep -q "^usage: portcullisctl .*$c" "$tmp/out" || { echo "FAIL: $c --help has no usage line"; fails=$((fails + 1)); }
done

expect 2 'missing command' --
expect 2 "unknown command 'frobnicate'" -- frobnicate
expect 2 'approve: missing ADDR' -- approve
expect 2 "not a fully qualified domain name" -- approve 198.51.100.7 --hostname localhost
expect 2 "is not a rate" -- approve 198.51.100.7 --rate fast
expect 2 "is not a date" -- approve 198.51.100.7 --expires someday
expect 2 'unban: --reason is required' -- unban 198.51.100.7
expect 2 "'maybe' is not on or off" -- monitor maybe
expect 2 "'frob' is not one of list, add, del" -- managed frob
expect 2 'relay add: missing CIDR' -- relay add
expect 2 "'x' is not show or reload" -- rules x
expect 2 "import: cannot read" -- import "$tmp/absent"
expect 2 'unrecognised option|unrecognized option' -- list --colour blue
expect 3 'portcullisctl: ' -- --socket "$tmp/absent.sock" status
PORTCULLIS_SOCKET="$tmp/absent.sock" expect 3 'absent.sock' -- show 198.51.100.7

if [ "$fails" -ne 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "portcullisctl usage checks passed"
