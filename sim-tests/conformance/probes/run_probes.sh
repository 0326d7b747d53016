#!/bin/sh
# Re-run every probe of this folder on the local OTP 25.2.3 / Elixir 1.14.0
# (Debian 12: apt-get install -y erlang-base elixir) and compare with the saved
# outputs (1 and 2 schedulers), plus the oracle scenario 65 (--check with 1 and
# 2 schedulers; the oracle lives beside the repository, ORACLE= overrides where).
# The probes record what the oracle's scenario format cannot express; each .out is
# the reference a test in sim-tests/probes.rs compares otpsim with.
#   sh run_probes.sh            -> compare
#   sh run_probes.sh --write    -> rewrite the saved *.out / *.trace
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${PROBE_BUILD_DIR:-/tmp/oracle16_build}
mkdir -p "$BUILD"
EX=$(elixir -e 'IO.write(:code.lib_dir(:elixir, :ebin))')
erlc -o "$BUILD" "$HERE"/sofo_queued_exit.erl "$HERE"/stop_probe.erl "$HERE"/get_childspec_probe.erl
erl_probe() { erl -noshell +S "$2" -pa "$BUILD" -pa "$EX" -eval "$1:main()" -s init stop; }
ex_probe() { elixir --erl "+S $2" "$HERE/$1.exs"; }
ORACLE=${ORACLE:-$HERE/../../../../shared/otp-oracle/run.sh}
export ORACLE_BUILD_DIR=${ORACLE_BUILD_DIR:-/tmp/oracle_build}
if [ "${1:-}" = --write ]; then
    erl_probe sofo_queued_exit 1:1 > "$HERE/sofo_queued_exit.out"
    erl_probe stop_probe 1:1 > "$HERE/stop_probe.out"
    erl_probe get_childspec_probe 1:1 > "$HERE/get_childspec_probe.out"
    ex_probe dsup_report_order_many 1:1 > "$HERE/dsup_report_order_many.out"
    ex_probe task_replies 1:1 > "$HERE/task_replies.out"
    $ORACLE --write "$HERE/../65_dsup_shutdown_error_order.json"
    exit 0
fi
status=0
for s in 1:1 2:2; do
    for p in sofo_queued_exit stop_probe get_childspec_probe; do
        if erl_probe $p $s | diff -u "$HERE/$p.out" - ; then echo "ok $p +S $s"; else echo "DIFFERS $p +S $s"; status=1; fi
    done
    for p in dsup_report_order_many task_replies; do
        if ex_probe $p $s | diff -u "$HERE/$p.out" - ; then echo "ok $p +S $s"; else echo "DIFFERS $p +S $s"; status=1; fi
    done
    ORACLE_SCHEDULERS=$s $ORACLE --check "$HERE/../65_dsup_shutdown_error_order.json" || status=1
done
exit $status
