#!/usr/bin/env bash
# The whole test suite: install what is missing, check formatting, build with warnings as
# errors, run every test, run the threaded parts under ThreadSanitizer, then build and run
# every test again under AddressSanitizer and UndefinedBehaviorSanitizer. Set
# EM_FUZZ_SECONDS=N to also fuzz each parser and reader N seconds. The Windows build of the
# agent (mingw-w64) and its tests under wine run too; EM_WINDOWS=0 skips them.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)
"$top/scripts/setup.sh" test

echo "== format check"
cmake -S "$top" -B "$top/build" -DEM_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
cmake --build "$top/build" --target format-check

# A test that fails is run once more before it counts as failed (ctest prints both runs):
# the bus cases' throwaway RabbitMQ brokers now and then do not come up, or lose a
# consumer across a restart, when two start at once on this 2-core machine.
retry=(--repeat until-pass:2)

echo "== build and test (RelWithDebInfo, -Werror)"
cmake --build "$top/build" -j"$jobs"
# The longest end-to-end cases run once, in the AddressSanitizer stage below, where they
# check memory as well: the bus's fault cases (brokers and databases stopped, killed,
# full or locked under the agent and consume), the loaders against their real servers,
# the fault agreement and the PostgreSQL cases of the bus and of serve. Here the bus is
# exercised by its sqlite case and serve by its others. (Running them twice took 5 of
# CI's 25 minutes.)
(cd "$top/build" && ctest -j"$jobs" --output-on-failure --timeout 600 "${retry[@]}" \
    -E '^(e2e_bus_(outage|unrouted|restart|kill|two|duplicate|poison|tls|state|storefull|pgcrash|pglocked|postgres)|e2e_loaders|e2e_faults_agree|e2e_serve_postgres)$')

echo "== the portable watcher (uv_fs_event + settle), built and tested on this machine"
cmake -S "$top" -B "$top/build-fsevent" -DEM_WERROR=ON -DEM_WATCHER=fsevent \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build-fsevent" -j"$jobs" --target em-agent test_watcher
(cd "$top/build-fsevent" && ctest -j"$jobs" --output-on-failure --timeout 600 \
    -R 'test_watcher|e2e_watch_(before|midway|after|kill|restart|poll|ops|grow|burst)')

if [ "${EM_WINDOWS:-1}" != 0 ]; then
    echo "== Windows: em-agent.exe cross-built with -Werror, its unit tests and smoke cases under wine"
    "$top/scripts/test-windows.sh" "$top/build-win" "$top/build/agent/em-agent"
fi

echo "== ThreadSanitizer: the parse pool (scan, watch walks and bursts) and the bus publisher thread"
cmake -S "$top" -B "$top/build-tsan" -DEM_WERROR=ON -DEM_SANITIZE=thread \
    -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$top/build-tsan" -j"$jobs"
(cd "$top/build-tsan" && TSAN_OPTIONS="halt_on_error=1:exitcode=66:suppressions=$top/tests/tsan.supp" ctest -j"$jobs" \
    --output-on-failure --timeout 600 "${retry[@]}" \
    -R '^(test_arena|test_pool|test_pfor|test_journal|test_scan|e2e_cli|e2e_watch_(after|kill|killsnap|restart|burst)|e2e_bus_(sqlite|outage))$')

echo "== build and test under AddressSanitizer + UBSan"
cmake -S "$top" -B "$top/build-asan" -DEM_WERROR=ON -DEM_SANITIZE=address,undefined \
    -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$top/build-asan" -j"$jobs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if [ -n "${EM_FUZZ_SECONDS:-}" ]; then
    echo "== fuzzing each parser for ${EM_FUZZ_SECONDS}s"
    "$top/tests/fuzz/run.sh" "$EM_FUZZ_SECONDS"
fi
# Last, so that CI output ends with ctest's summary.
(cd "$top/build-asan" && ctest -j"$jobs" --output-on-failure --timeout 900 "${retry[@]}")
