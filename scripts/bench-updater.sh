#!/usr/bin/env bash
# Measure zbot-updater against the seed's ways, in the same run on the same machine:
#  (a) packing a 256 MiB ext4 rootfs image: `zbot-updater pack` (gzip, zstd) against the seed's
#      gzip + sha256sum + cpio -H crc: time and package size;
#  (b) upload throughput to the real SWUpdate (Debian's 2022.12) on 127.0.0.1 in a private
#      network namespace: `zbot-updater update` against the seed client's method (1 KiB writes,
#      as tools/zbot_updater.py sends the multipart body; reproduced in Python below), RUNS runs
#      each, median; and `update`'s stages (status, upload, install).
# Prints a Markdown table. Speed is measured here, never asserted in tests.
#
# Usage: sudo scripts/bench-updater.sh [RUNS] [UPLOAD_MIB]    (defaults 5, 64)
# Needs: root (unshare -n), swupdate, openssl, mkfs.ext4, gzip, sha256sum, cpio, python3.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-5}"
upload_mib="${2:-64}"
for t in swupdate openssl mkfs.ext4 gzip sha256sum cpio python3 unshare; do
    command -v "$t" >/dev/null || { echo "bench-updater: $t missing (scripts/setup-debian.sh)" >&2; exit 2; }
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && cargo build -q --release -p zbot-updater)
bin="$CARGO_TARGET_DIR/release/zbot-updater"
w="$(mktemp -d /tmp/bench-updater.XXXXXX)"
# Kept when something failed, for its logs.
trap 'rc=$?; if [ $rc = 0 ]; then rm -rf "$w"; else echo "bench-updater: failed, kept $w" >&2; fi' EXIT
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2-$1:.1f}')"; }
size() { stat -c %s "$1"; }

echo "bench-updater: making a 256 MiB ext4 image of system libraries" >&2
mkdir -p "$w/fs"
# About 220 MiB of real files (libraries compress like a rootfs does), deterministic per machine.
find /usr/lib /usr/share -xdev -type f -size -8M 2>/dev/null | LC_ALL=C sort | python3 -c '
import os, shutil, sys
dst, limit, total = sys.argv[1], 220 << 20, 0
for line in sys.stdin:
    f = line.rstrip("\n")
    try: n = os.path.getsize(f)
    except OSError: continue
    if total + n > limit: continue  # read on: the writer must not get SIGPIPE
    d = os.path.join(dst, f.lstrip("/"))
    os.makedirs(os.path.dirname(d), exist_ok=True)
    try: shutil.copyfile(f, d)
    except OSError: continue
    total += n
' "$w/fs"
mkfs.ext4 -q -F -d "$w/fs" "$w/rootfs.ext4" 256M >/dev/null
rm -rf "$w/fs"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=bench -days 2 \
    -keyout "$w/key.pem" -out "$w/cert.pem" 2>/dev/null

# (a) the seed's way: gzip, sha256sum, sw-description, cpio -H crc (gen_swu_ota, unsigned).
echo "bench-updater: (a) packing" >&2
mkdir -p "$w/seed"
t0=$(now)
gzip -c "$w/rootfs.ext4" >"$w/seed/rootfs.ext4.gz"
sum=$(sha256sum "$w/seed/rootfs.ext4.gz" | cut -d' ' -f1)
cat >"$w/seed/sw-description" <<EOF
software = {
    version = "1.01";
    hardware_compatibility = ["1.0", "1.1"];
    images = ( { filename = "rootfs.ext4.gz"; device = "/dev/mmcblk0p4"; type = "raw";
        sha256 = "$sum"; compressed = "zlib"; } );
}
EOF
(cd "$w/seed" && printf 'sw-description\nrootfs.ext4.gz\n' | cpio -o -H crc --quiet >"$w/seed.swu")
t1=$(now)
seed_t=$(secs "$t0" "$t1")
pack() { # compression -> "seconds bytes"
    local a b
    a=$(now)
    "$bin" pack "$w/rootfs.ext4" --version 1.2 --hardware 1.1 --slot-size 275M \
        --key "$w/key.pem" --cert "$w/cert.pem" --compress "$1" -o "$w/$1.swu" >/dev/null
    b=$(now)
    echo "$(secs "$a" "$b") $(size "$w/$1.swu")"
}
read -r gz_t gz_s < <(pack gzip)
read -r zs_t zs_s < <(pack zstd)

# (b) upload: a stored (uncompressed) package of UPLOAD_MIB, so the upload is the transfer.
echo "bench-updater: (b) uploads, $runs runs each, ${upload_mib} MiB" >&2
head -c $((upload_mib << 20)) "$w/rootfs.ext4" >"$w/up.img"
cat >"$w/slots.toml" <<EOF
bootlimit = 3
[[slot]]
name = "rootfs"
role = "primary"
root = "root=/dev/vda4 rootwait rw"
device = "$w/target.img"
[[slot]]
name = "otafs"
role = "recovery"
root = "root=/dev/vda3 rootwait rw"
device = "/nonexistent"
EOF
: >"$w/target.img"   # SWUpdate's raw handler opens the device, it does not create it
"$bin" pack "$w/up.img" --version 1.2 --hardware 1.1 --slot-size 275M --slots "$w/slots.toml" \
    --key "$w/key.pem" --cert "$w/cert.pem" --compress none -o "$w/up.swu" >/dev/null
# The seed client's write pattern: the multipart body in 1 KiB writes; the websocket opened
# first (as zbot_updater.py does) and read until DONE or FAILURE.
cat >"$w/seed_client.py" <<'EOF'
import os, socket, sys, time
path, port = sys.argv[1], int(sys.argv[2])
ws = socket.create_connection(("127.0.0.1", port))
ws.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
ws.recv(4096)
b = b"------------------------seedbench"
head = (b"--" + b + b'\r\nContent-Disposition: form-data; name="file"; filename="up.swu"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n")
tail = b"\r\n--" + b + b"--\r\n"
n = len(head) + os.path.getsize(path) + len(tail)
t0 = time.monotonic()
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
          b"Content-Type: multipart/form-data; boundary=%s\r\n\r\n" % (n, b))
s.sendall(head)
with open(path, "rb") as f:
    while True:
        c = f.read(1024)
        if not c:
            break
        s.sendall(c)
s.sendall(tail)
s.recv(4096)
t1 = time.monotonic()
seen = b""
ws.settimeout(120)
while b'"DONE"' not in seen and b'"FAILURE"' not in seen:
    d = ws.recv(65536)
    if not d:
        break
    seen += d
print(f"{t1 - t0:.3f}", "DONE" if b'"DONE"' in seen else "FAILURE")
EOF
cat >"$w/uploads.sh" <<EOF
set -eu
ip link set lo up
mkdir -p "$w/sw" "$w/www"
TMPDIR="$w/sw" swupdate -l 5 -k "$w/cert.pem" -H zbot:1.1 -w "-p 18180 -r $w/www" >"$w/swupdate.log" 2>&1 &
sw=\$!
# SWUpdate and its helpers outlive the namespace's shell: end them however this script ends.
trap 'kill -9 \$sw \$(pgrep -P \$sw) 2>/dev/null' EXIT
for i in \$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/18180) 2>/dev/null && break; sleep 0.1; done
ours() { "$bin" update 127.0.0.1:18180 "$w/up.swu" --no-wait --timeout 300 --json >>"$w/ours.jsonl" || true; sleep 0.5; }
seed() { python3 "$w/seed_client.py" "$w/up.swu" 18180 >>"$w/seed.txt"; sleep 0.5; }
# Alternate which goes first, so neither always follows the other's install.
for i in \$(seq $runs); do
    if [ \$((i % 2)) = 1 ]; then ours; seed; else seed; ours; fi
done
EOF
unshare -n bash "$w/uploads.sh"
up_size=$(size "$w/up.swu")
python3 - "$w/ours.jsonl" "$w/seed.txt" "$up_size" "$seed_t" "$(size "$w/seed.swu")" \
    "$gz_t" "$gz_s" "$zs_t" "$zs_s" "$runs" <<'EOF'
import json, statistics, sys
ours_f, seed_f, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
seed_t, seed_s, gz_t, gz_s, zs_t, zs_s, runs = sys.argv[4:11]
ours = [json.loads(l) for l in open(ours_f)]
bad = [o for o in ours if o["exit"] != 0]
seed = [l.split() for l in open(seed_f)]
if bad or any(s[1] != "DONE" for s in seed):
    sys.exit(f"bench-updater: an upload failed: {bad} {seed}")
med = lambda v: statistics.median(v)
up = med([o["stages"]["upload"] for o in ours])
su = med([float(s[0]) for s in seed])
mb = n / 1e6
print("| method | time | package |\n|---|---|---|")
print(f"| seed: `gzip` + `sha256sum` + `cpio -H crc` | {seed_t} s | {int(seed_s):,} B |")
print(f"| `pack --compress gzip` | {gz_t} s | {int(gz_s):,} B |")
print(f"| `pack --compress zstd` | {zs_t} s | {int(zs_s):,} B |")
print()
print(f"| upload of {n:,} B to SWUpdate on 127.0.0.1 (median of {runs}) | time | throughput |\n|---|---|---|")
print(f"| seed client's method (1 KiB writes) | {su:.2f} s | {mb/su:.0f} MB/s |")
print(f"| `zbot-updater update` (64 KiB writes) | {up:.2f} s | {mb/up:.0f} MB/s |")
print()
st = {k: med([o["stages"].get(k, 0) for o in ours]) for k in ours[0]["stages"]}
print("| `update` stage (median) | " + " | ".join(st) + " | total |")
print("|---" * (len(st) + 2) + "|")
print("| seconds | " + " | ".join(f"{v:.2f}" for v in st.values()) + f" | {med([o['seconds'] for o in ours]):.2f} |")
EOF
