#!/usr/bin/env bash
# Fuzzes the public API against its own OpenAPI document with Schemathesis:
# starts `shop up` (the monolith, SQLite) on a free loopback port with a
# throwaway data directory, signs a customer up and in, mints a staff token
# with the deployment's keys, and runs every Schemathesis check, bounded in
# examples and time (schemathesis.toml beside this script). Exits non-zero
# on any server error or any answer the document does not describe.
#
#   tests/schemathesis/run.sh [path/to/shop]
#
# The binary is $1, else $SHOP_BIN, else target/debug/shop (under
# $CARGO_TARGET_DIR when set); this script builds nothing: CI has built the
# workspace already. With SCHEMATHESIS_SPLIT=1 the shop runs split (a
# process per capability behind the gateway) instead of as one process.
# With SCHEMATHESIS_REPORT_DIR set, JUnit and NDJSON reports of every case
# are written there. Only loopback traffic; the shop is stopped by its PID
# (a split shop's supervisor stops its children in order, hence the wait).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/tests/schemathesis"
SCHEMATHESIS_VERSION=4.32.5
SHOP="${1:-${SHOP_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/shop}}"

if [ ! -x "$SHOP" ]; then
    echo "no shop binary at $SHOP: build the workspace first (cargo test --workspace)" >&2
    exit 1
fi

if [ "$(python3 -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true)" != "$SCHEMATHESIS_VERSION" ]; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION"
    python3 -m pip install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

WORK="$(mktemp -d)"
SHOP_PID=""
cleanup() {
    if [ -n "$SHOP_PID" ] && kill -0 "$SHOP_PID" 2>/dev/null; then
        kill -TERM "$SHOP_PID" 2>/dev/null || true
        for _ in $(seq 1 300); do
            kill -0 "$SHOP_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SHOP_PID" 2>/dev/null || true
        wait "$SHOP_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

started=$SECONDS

# The run signs in more often than a person would; the defaults (5 per
# email, 30 per address a minute) would answer 429 to most of it. 429 is
# documented, but the sign-in's own answers would go untested.
placement=()
if [ "${SCHEMATHESIS_SPLIT:-0}" = 1 ]; then
    placement=(--split)
fi
SHOP_SIGN_IN_PER_EMAIL=1000000 SHOP_SIGN_IN_PER_ADDRESS=1000000 \
    "$SHOP" up "${placement[@]+"${placement[@]}"}" --addr 127.0.0.1:0 --data "$WORK/data" >"$WORK/shop.out" 2>"$WORK/shop.log" &
SHOP_PID=$!

URL=""
for _ in $(seq 1 300); do
    URL="$(sed -n 's/^shop listening on \(http:\/\/[^ ]*\).*/\1/p' "$WORK/shop.out")"
    [ -n "$URL" ] && break
    if ! kill -0 "$SHOP_PID" 2>/dev/null; then
        echo "shop exited before listening:" >&2
        cat "$WORK/shop.log" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$URL" ]; then
    echo "shop did not start listening within 30 s" >&2
    exit 1
fi
echo "shop $URL (pid $SHOP_PID, data in $WORK/data)"

# A customer of their own, signed up and signed in as a client would, with
# a password made here and sent only in request bodies; then the contact
# read model is waited for until it has the registration (its consistency
# token is what the contact read presents during the run).
customer="$(SEAMS_URL="$URL" python3 - <<'PY'
import json, os, secrets, time, urllib.error, urllib.request

url = os.environ["SEAMS_URL"]

def call(method, path, body=None, headers=None):
    req = urllib.request.Request(
        url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method=method,
    )
    with urllib.request.urlopen(req, timeout=30) as res:
        return json.load(res), res.headers

email = f"fuzz-{secrets.token_hex(4)}@example.com"
password = secrets.token_urlsafe(18)
who, headers = call("POST", "/identity/customers", {"email": email, "name": "Fuzz", "password": password})
written = headers["seams-consistency-token"]
session, _ = call("POST", "/identity/sessions", {"email": email, "password": password})
token = session["access_token"]
deadline = time.monotonic() + 30
while True:
    try:
        call("GET", f"/notification/contacts/{who['id']}", headers={
            "Authorization": f"Bearer {token}",
            "seams-consistency-token": written,
        })
        break
    except urllib.error.HTTPError as e:
        if time.monotonic() > deadline:
            raise SystemExit(f"the contact read model never reached {written}: {e}")
        time.sleep(0.2)
print(who["id"], written, token)
PY
)"
read -r SEAMS_CUSTOMER_ID SEAMS_CONSISTENCY_TOKEN SEAMS_CUSTOMER_TOKEN <<<"$customer"
SEAMS_STAFF_TOKEN="$("$SHOP" token --role staff --subject schemathesis --ttl 15m --data "$WORK/data")"
export SEAMS_CONSISTENCY_TOKEN SEAMS_CUSTOMER_TOKEN SEAMS_STAFF_TOKEN

reports=()
if [ -n "${SCHEMATHESIS_REPORT_DIR:-}" ]; then
    mkdir -p "$SCHEMATHESIS_REPORT_DIR"
    reports=(--report junit,ndjson --report-dir "$(cd "$SCHEMATHESIS_REPORT_DIR" && pwd)")
fi

status=0
# From the scratch directory, so nothing schemathesis writes lands in the tree.
cd "$WORK"
python3 -m schemathesis.cli --config-file "$HERE/schemathesis.toml" run "$URL/openapi.json" \
    --checks all \
    --no-color "${reports[@]+"${reports[@]}"}" || status=$?

if [ "$status" -ne 0 ]; then
    echo "schemathesis failed (exit $status); the shop's log:" >&2
    grep -E 'ERROR|WARN|panicked' "$WORK/shop.log" | tail -n 50 >&2 || true
fi
# A panic is a server error even when it was answered as a problem.
if grep -q 'panicked' "$WORK/shop.log"; then
    echo "the shop panicked during the run" >&2
    status=1
fi
echo "schemathesis run: $((SECONDS - started)) s in all"
exit "$status"
