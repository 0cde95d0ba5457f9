#!/usr/bin/env bash
# The demo behind `make demo`: pushsim stands in for Apple and Google, a
# MariaDB database "pushd_demo" holds 2,000 iOS and 2,000 Android users (a few
# with dead tokens), and two campaigns fall due five seconds after pushd
# starts. It prints the campaign rows until both are finished.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=.demo
mkdir -p "$demo"
db=pushd_demo
sql() { mysql --protocol=tcp -h127.0.0.1 -P3306 -uroot "$@"; }

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

echo "== starting pushsim (Apple and Google stand-in) =="
rm -f "$demo/sim/pushsim.json"
bin/pushsim -dir "$demo/sim" -listen 127.0.0.1:18443 -admin 127.0.0.1:18444 \
  -bundle-id com.example.demo -project pushd-demo >"$demo/pushsim.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do [ -s "$demo/sim/pushsim.json" ] && break; sleep 0.1; done
[ -s "$demo/sim/pushsim.json" ] || { cat "$demo/pushsim.log"; exit 1; }
sim="$PWD/$demo/sim"
keyfile=$(ls "$sim"/AuthKey_*.p8)
keyid=$(basename "$keyfile" .p8); keyid=${keyid#AuthKey_}
teamid=$(sed -n 's/.*"team_id": *"\([^"]*\)".*/\1/p' "$sim/pushsim.json" | head -1)

cat >"$demo/config.ini" <<INI
[Server]
listen = 127.0.0.1:19468
log_format = text

[SSL]
ca_file = $sim/ca.pem

[Database]
host = 127.0.0.1
port = 3306
user = root
password =
database = $db

[Demo-iOS]
push_type = APNs
environment = development
endpoint = https://127.0.0.1:18443
bundle_id = com.example.demo
auth_key_path = $keyfile
key_id = $keyid
team_id = $teamid

[Demo-Android]
push_type = FCM
endpoint = https://127.0.0.1:18443
service_account_file = $sim/service-account.json
INI
chmod 600 "$demo/config.ini"

echo "== database $db: migrate and seed users =="
sql -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db"
bin/pushd migrate -config "$demo/config.ini"
sql "$db" <<SQL
INSERT INTO users (app, push_token, registered_at)
  SELECT 'Demo-iOS', LPAD(HEX(seq), 64, '0'), NOW() - INTERVAL 1 DAY FROM seq_1_to_1980;
INSERT INTO users (app, push_token, registered_at)
  SELECT 'Demo-iOS', CONCAT('dead', LPAD(HEX(seq), 60, '0')), NOW() - INTERVAL 1 DAY FROM seq_1_to_20;
INSERT INTO users (app, push_token) SELECT 'Demo-Android', CONCAT('demo-token-', seq) FROM seq_1_to_1980;
INSERT INTO users (app, push_token) SELECT 'Demo-Android', CONCAT('dead-', seq) FROM seq_1_to_20;
INSERT INTO campaigns (app, title, body, data, scheduled_at, expires_at) VALUES
  ('Demo-iOS', 'Winter sale', 'Everything 30% off until Sunday', '{"screen": "sale"}',
   UTC_TIMESTAMP() + INTERVAL 5 SECOND, UTC_TIMESTAMP() + INTERVAL 1 HOUR),
  ('Demo-Android', 'Winter sale', 'Everything 30% off until Sunday', '{"screen": "sale"}',
   UTC_TIMESTAMP() + INTERVAL 5 SECOND, UTC_TIMESTAMP() + INTERVAL 1 HOUR);
SQL

echo "== running pushd (log: $demo/pushd.log) =="
bin/pushd run -config "$demo/config.ini" 2>"$demo/pushd.log" &
pids+=($!)

for i in $(seq 1 120); do
  sleep 1
  echo "-- after ${i}s"
  sql -t "$db" -e "SELECT id, app, status, targeted, sent, failed, invalid_tokens, expired, status_reason FROM campaigns"
  left=$(sql -N "$db" -e "SELECT COUNT(*) FROM campaigns WHERE status IN ('scheduled', 'running')")
  [ "$left" = 0 ] && break
done
echo "== final campaign rows =="
sql -t "$db" -e "SELECT id, app, status, targeted, sent, failed, invalid_tokens, expired, status_reason FROM campaigns"
echo "== pushsim's own count =="
curl -s http://127.0.0.1:18444/stats 2>/dev/null || true
echo
[ "$left" = 0 ] || { echo "campaigns did not finish; see $demo/pushd.log"; exit 1; }
echo "== done: both campaigns sent; dead tokens are now in pushd_invalid_tokens =="
sql -t "$db" -e "SELECT app, reason, COUNT(*) AS tokens FROM pushd_invalid_tokens GROUP BY app, reason"
