#!/usr/bin/env python3
# Memory held after large buffered bodies: 30 clients send 9,900,000-byte bodies at once to
# a mock route (read whole, under the buffered-body budget); prints RSS before, at the peak,
# and 5 s after every client got its answer.
#
#   bench/body_memory.py [path to tollgate-proxy, default target/release/tollgate-proxy]
import socket, subprocess, sys, tempfile, threading, time, os
binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "tollgate-proxy")
d = tempfile.mkdtemp()
open(f"{d}/api.yaml", "w").write("""apiVersion: tollgate.dev/v1alpha1
kind: ApiGateway
metadata: {name: mem}
spec:
  stages: [{name: dev}]
---
apiVersion: tollgate.dev/v1alpha1
kind: Route
metadata: {name: stash}
spec:
  gatewayRef: {name: mem}
  method: POST
  path: /stash
  integration:
    mock: {statusCode: 200, body: ok}
""")
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
port, admin = free_port(), free_port()
p = subprocess.Popen([binary, "--config", d, "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin}", "--access-log", "off", "--log-level", "warn"])
def rss():
    for line in open(f"/proc/{p.pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1])
for _ in range(100):
    try: socket.create_connection(("127.0.0.1", port)).close(); break
    except OSError: time.sleep(0.1)
time.sleep(0.5)
before = rss(); peak = [before]
N, SIZE = 30, 9_900_000
body = b"x" * SIZE
def client():
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"POST /dev/stash HTTP/1.1\r\nHost: x\r\nContent-Length: {SIZE}\r\nConnection: close\r\n\r\n".encode() + body)
    s.recv(100); s.close()
ts = [threading.Thread(target=client) for _ in range(N)]
for t in ts: t.start()
while any(t.is_alive() for t in ts):
    peak[0] = max(peak[0], rss()); time.sleep(0.02)
time.sleep(5)
after = rss()
print(f"{os.path.basename(binary)}: RSS before {before} KiB, peak {peak[0]} KiB, 5 s after {after} KiB")
p.terminate(); p.wait()
