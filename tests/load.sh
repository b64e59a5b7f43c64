#!/usr/bin/env bash
# Load figures on this machine (not part of CI; a few minutes). Builds release; first compares
# two Switchboards with the call ledger on and off at a steady rate; then starts Switchboard
# and, in the same run, a minimal actix-web server answering constant documents
# (examples/constant.rs); plays the same mix of calls against both with `switchboard simulate`
# and prints the ratios. Switchboard runs its default configuration (logs at info, written to a
# file; its call ledger in SQLite, in a scratch directory; the recordings archive off, as the
# simulator's recording links lead nowhere). Then: the same with the ledger off, the
# same with Slack configured against a fake that answers at once (every message
# really posted) and one that takes 2 s per message, memory per live call (HOLD_CALLS calls held
# ringing), live calls once every call ended, and the Redis backend. And the dashboard: the same
# steady rate with 100 pages following its event stream, and without.
#   bash tests/load.sh            # CALLS=20000 CONCURRENCY=50 HOLD_CALLS=100000 by default
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${CALLS:-20000}
CONC=${CONCURRENCY:-50}
HOLD=${HOLD_CALLS:-100000}

cargo build --release --locked --quiet --bin switchboard --example constant
bin=target/release/switchboard
out=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$out"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_up() {
  for _ in $(seq 200); do
    curl -s -o /dev/null "http://127.0.0.1:$1/texml/status" && return 0
    sleep 0.05
  done
  echo "nothing answers on port $1" >&2; exit 1
}
# start_switchboard PORT [VAR=value ...]: a release Switchboard on PORT whose documents point at it.
start_switchboard() {
  local port=$1; shift
  env SWITCHBOARD__SERVER__HOST=127.0.0.1 SWITCHBOARD__SERVER__PORT="$port" \
      SWITCHBOARD__SERVER__PUBLIC_URL="http://127.0.0.1:$port" \
      SWITCHBOARD__LIMITS__MAX_ACTIVE_CALLS=1000000 SWITCHBOARD__SERVER__SHUTDOWN_DELAY_SECS=0 \
      SWITCHBOARD__DIAL__WRAP_UP_SECS=0 SWITCHBOARD__PATHS__DATA="$out/data-$port" \
      SWITCHBOARD__RECORDINGS__ARCHIVE=false \
      "$@" "$bin" > "$out/switchboard-$port.log" 2>&1 &
  pids+=($!)
  wait_up "$port"
}
# mix NAME PORT: the same seeded mix of calls; figures in $out/NAME.json.
mix() {
  "$bin" simulate --url "http://127.0.0.1:$2/texml/inbound" --scenario mix --calls "$CALLS" \
    --concurrency "$CONC" --json "$out/$1.json" > "$out/$1.txt" || true
  echo "--- $1"; cat "$out/$1.txt"
}
field() { python3 -c "import json,sys; d=json.load(open('$out/$1.json')); print($2)"; }
live_calls() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^switchboard_live_calls /{print $2}'; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }

# The ledger's cost to the call path at a steady rate that leaves the two cores room: first, on a
# quiet machine (the saturated runs and the 100,000 held calls below leave it busy reclaiming
# memory for minutes, which shows as latency with and without the ledger alike). Two fresh
# servers, ledger on and off, RATE calls/s for 10 s each, alternating six times after a warm-up
# (runs swing from one to the next; the medians are compared).
RATE=${LEDGER_RATE:-300}
paced_on=$(free_port)
start_switchboard "$paced_on"
paced_off=$(free_port)
start_switchboard "$paced_off" SWITCHBOARD__LEDGER__ENABLED=false
paced() {
  "$bin" simulate --url "http://127.0.0.1:$2/texml/inbound" --scenario mix --calls "$((RATE * 10))" \
    --concurrency "$CONC" --rate "$RATE" --json "$out/$1.json" > "$out/$1.txt" || true
}
paced warm-off "$paced_off"
paced warm-on "$paced_on"
for i in 1 2 3 4 5 6; do
  paced "paced-off-$i" "$paced_off"
  paced "paced-on-$i" "$paced_on"
done
echo "--- steady $RATE calls/s: p99 ms, ledger off / on, six runs each"
for i in 1 2 3 4 5 6; do
  field "paced-off-$i" "d['kinds']['all']['p99_ms']"; field "paced-on-$i" "d['kinds']['all']['p99_ms']"
done | paste -sd' '
kill "${pids[@]}" 2>/dev/null || true
wait 2>/dev/null || true
pids=()

# The dashboard's cost to the call path: one server with the dashboard on (a user from a users
# file), the same steady rate with no page connected and with PAGES pages following the event
# stream (curl, reading every event), alternating six times. Each page's stream is kept, to show
# it was served throughout.
PAGES=${PAGES:-100}
printf 'load:%s:viewer\n' "$(echo 'load-test-password' | "$bin" hash-password)" > "$out/users"
dash_port=$(free_port)
# Heartbeats every 2 s: a page that went away is noticed (at the next write) before the next run.
start_switchboard "$dash_port" SWITCHBOARD__DASHBOARD__USERS_FILE="$out/users" \
  SWITCHBOARD__DASHBOARD__HEARTBEAT_SECS=2
dash_pid=${pids[-1]}
# The server's CPU time (user + system, in clock ticks) so far: steadier than a p99 on a shared
# machine.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$dash_pid/stat"; }
pages_pids=()
open_pages() {
  for p in $(seq "$PAGES"); do
    curl -sN -u load:load-test-password "http://127.0.0.1:$dash_port/dashboard/events" > "$out/page-$1-$p.sse" 2>/dev/null &
    pages_pids+=($!)
  done
  sleep 2
}
streams_open() { curl -s "http://127.0.0.1:$dash_port/metrics" | awk '/^switchboard_dashboard_streams /{print $2}'; }
close_pages() {
  kill "${pages_pids[@]}" 2>/dev/null || true; wait "${pages_pids[@]}" 2>/dev/null || true; pages_pids=()
  for _ in $(seq 50); do [ "$(streams_open)" = 0 ] && return 0; sleep 0.2; done
  echo "the server still counts $(streams_open) streams after closing the pages" >&2
}
paced warm-dash "$dash_port"
without_pages() {
  local before; before=$(cpu_ticks)
  paced "pages-none-$1" "$dash_port"
  echo "$(( $(cpu_ticks) - before ))" > "$out/cpu-none-$1"
}
with_pages() {
  local before streams events least
  open_pages "$1"
  streams=$(streams_open)
  before=$(cpu_ticks)
  paced "pages-$PAGES-$1" "$dash_port"
  echo "$(( $(cpu_ticks) - before ))" > "$out/cpu-pages-$1"
  # Events each page got during the run (every page, not just some).
  events=$(cat "$out"/page-"$1"-*.sse | grep -c '^event: ' || true)
  least=$(for f in "$out"/page-"$1"-*.sse; do grep -c '^event: live' "$f" || true; done | sort -n | head -1)
  close_pages
  echo "run $1: $streams streams open; $events events sent in all, at least $least live updates per page" >> "$out/pages.txt"
}
# Alternating which comes first, so a machine that gets busier during the run favours neither.
for i in 1 2 3 4 5 6; do
  if [ $((i % 2)) = 1 ]; then without_pages "$i"; with_pages "$i"; else with_pages "$i"; without_pages "$i"; fi
done
echo "--- steady $RATE calls/s: p99 ms, no page / $PAGES pages, six runs each"
for i in 1 2 3 4 5 6; do
  field "pages-none-$i" "d['kinds']['all']['p99_ms']"; field "pages-$PAGES-$i" "d['kinds']['all']['p99_ms']"
done | paste -sd' '
cat "$out/pages.txt"
kill "${pids[@]}" 2>/dev/null || true
wait 2>/dev/null || true
pids=()

echo "== $(nproc) cores; $CALLS calls of the mix at concurrency $CONC against each server"
constant_port=$(free_port)
"target/release/examples/constant" "$constant_port" > "$out/constant.log" 2>&1 &
pids+=($!)
wait_up "$constant_port"
sb_port=$(free_port)
start_switchboard "$sb_port"

# Warm both up, then measure.
CALLS=$((CALLS / 10)) mix warmup-constant "$constant_port" > /dev/null
CALLS=$((CALLS / 10)) mix warmup-switchboard "$sb_port" > /dev/null
mix constant "$constant_port"
mix switchboard "$sb_port"
sleep 1
ended_live=$(live_calls "$sb_port")
# The same without the ledger: what writing it costs the call path.
off_port=$(free_port)
start_switchboard "$off_port" SWITCHBOARD__LEDGER__ENABLED=false
CALLS=$((CALLS / 10)) mix warmup-off "$off_port" > /dev/null
mix no-ledger "$off_port"

curl -s "http://127.0.0.1:$sb_port/metrics" | grep '^switchboard_ledger_writes_total' > "$out/ledger.writes"

# A second constant server plays a Slack that answers at once.
slack_port=$(free_port)
"target/release/examples/constant" "$slack_port" > "$out/slack.log" 2>&1 &
pids+=($!)
wait_up "$slack_port"
fast_port=$(free_port)
start_switchboard "$fast_port" SWITCHBOARD__SLACK__WEBHOOK_URL="http://127.0.0.1:$slack_port/fast"
mix fast-slack "$fast_port"
sleep 2
curl -s "http://127.0.0.1:$fast_port/metrics" | grep '^switchboard_notifications_total' > "$out/fast-slack.notifications"
log_lines=$(wc -l < "$out/switchboard-$sb_port.log")
dropped_lines=$(curl -s "http://127.0.0.1:$sb_port/metrics" | awk '/^switchboard_log_lines_dropped_total /{print $2}')

slow_port=$(free_port)
start_switchboard "$slow_port" SWITCHBOARD__SLACK__WEBHOOK_URL="http://127.0.0.1:$constant_port/slow"
mix slow-slack "$slow_port"

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no > "$out/redis.log" 2>&1 &
pids+=($!)
sleep 0.5
redis_sb_port=$(free_port)
start_switchboard "$redis_sb_port" SWITCHBOARD__STATE__BACKEND=redis \
  SWITCHBOARD__STATE__REDIS_URL="redis://127.0.0.1:$redis_port/0"
mix redis "$redis_sb_port"

hold_port=$(free_port)
# Memory per live call is the call state's: the ledger's is bounded (its queue, SQLite's cache).
start_switchboard "$hold_port" SWITCHBOARD__LEDGER__ENABLED=false
hold_pid=${pids[-1]}
sleep 0.5
before=$(rss_kb "$hold_pid")
"$bin" simulate --url "http://127.0.0.1:$hold_port/texml/inbound" --scenario hold \
  --calls "$HOLD" --concurrency "$CONC" > "$out/hold.txt" || true
after=$(rss_kb "$hold_pid")
held=$(live_calls "$hold_port")

echo
echo "== Summary"
python3 - "$out" "$before" "$after" "$held" "$HOLD" "$ended_live" "$log_lines" "$dropped_lines" <<'PY'
import json, sys
out, before, after, held, hold, ended_live, log_lines, dropped_lines = sys.argv[1:]
import glob, os
r = {os.path.basename(f)[:-5]: json.load(open(f)) for f in glob.glob(f"{out}/*.json")}
rps = lambda n: r[n]["requests_per_sec"]
p99 = lambda n: r[n]["kinds"]["all"]["p99_ms"]
errors = {n: r[n]["errors"] for n in r}
ratio = rps("switchboard") / rps("constant")
redis_ratio = rps("redis") / rps("constant")
slow = (p99("slow-slack") - p99("switchboard")) / p99("switchboard") * 100
per_call = (int(after) - int(before)) * 1024 / int(hold)
def line(name, value, target, ok):
    print(f"{name:<44} {value:<22} target {target:<14} {'met' if ok else 'MISSED'}")
p99_ratio = p99("switchboard") / p99("constant")
fast_ratio = rps("fast-slack") / rps("constant")
fast_p99 = p99("fast-slack") / p99("constant")
line("request rate vs constant server (memory)", f"{ratio:.2f}x ({rps('switchboard'):.0f} vs {rps('constant'):.0f}/s)", ">= 0.75x", ratio >= 0.75)
line("p99 vs constant server (memory)", f"{p99_ratio:.2f}x ({p99('switchboard'):.3f} vs {p99('constant'):.3f} ms)", "<= 1.25x", p99_ratio <= 1.25)
ledger_p99 = p99("switchboard") / p99("no-ledger")
line("saturated: rate with the ledger vs without", f"{rps('switchboard') / rps('no-ledger'):.2f}x ({rps('no-ledger'):.0f}/s without)", "(measured)", True)
line("saturated: p99 with the ledger vs without", f"{ledger_p99:.2f}x ({p99('switchboard'):.3f} vs {p99('no-ledger'):.3f} ms)", "(measured)", True)
median = lambda xs: sorted(xs)[len(xs) // 2 - 1] / 2 + sorted(xs)[len(xs) // 2] / 2
on = median([p99(f"paced-on-{i}") for i in (1, 2, 3, 4, 5, 6)])
off = median([p99(f"paced-off-{i}") for i in (1, 2, 3, 4, 5, 6)])
line("steady rate: median p99 with the ledger vs without", f"{on / off:.2f}x ({on:.3f} vs {off:.3f} ms)", "<= 1.1x", on / off <= 1.1)
pages = [n for n in r if n.startswith("pages-") and not n.startswith("pages-none")]
with_pages = median([p99(n) for n in pages])
no_pages = median([p99(f"pages-none-{i}") for i in (1, 2, 3, 4, 5, 6)])
line(f"steady rate: median p99 with {pages[0].split('-')[1]} dashboard pages vs none", f"{with_pages / no_pages:.2f}x ({with_pages:.3f} vs {no_pages:.3f} ms)", "<= 1.1x", with_pages / no_pages <= 1.1)
cpu = lambda kind: sum(int(open(f"{out}/cpu-{kind}-{i}").read()) for i in (1, 2, 3, 4, 5, 6))
line(f"steady rate: server CPU with the pages vs none", f"{cpu('pages') / cpu('none'):.2f}x ({cpu('pages') / 100:.1f} vs {cpu('none') / 100:.1f} s)", "(measured)", True)
print("  " + open(f"{out}/pages.txt").read().strip().replace("\n", "\n  "))
print("  ledger writes: " + ", ".join(l.strip().split("{")[1].replace('"} ', " ").replace('state="', "") for l in open(f"{out}/ledger.writes")))
line("log lines written / dropped (info)", f"{log_lines} / {dropped_lines}", "(measured)", True)
line("with Slack answering at once: rate", f"{fast_ratio:.2f}x ({rps('fast-slack'):.0f}/s)", "(reported)", True)
line("with Slack answering at once: p99", f"{fast_p99:.2f}x ({p99('fast-slack'):.3f} ms)", "(reported)", True)
print("  Slack deliveries: " + ", ".join(l.strip().split("{")[1].replace('"} ', " ").replace('state="', "") for l in open(f"{out}/fast-slack.notifications")))
line("p99 with Slack answering in 2 s", f"{p99('slow-slack'):.3f} ms ({slow:+.0f}%)", "< +20%", slow < 20)
line("memory per live call", f"{per_call:.0f} bytes ({held} held)", "< 1024 bytes", per_call < 1024)
line("live calls after every call ended", f"{ended_live}", "0", ended_live == "0")
line("request rate vs constant server (Redis)", f"{redis_ratio:.2f}x ({rps('redis'):.0f}/s)", "(measured)", True)
line("p99 request latency (Redis)", f"{p99('redis'):.3f} ms", "(measured)", True)
print(f"errors: {errors}")
PY
