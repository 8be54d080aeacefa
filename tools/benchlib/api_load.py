"""An HTTP API load generator for the benchmark: `conns` keep-alive connections (http.client, TLS when a CA file
is given), each a thread sending its requests back to back for `seconds`, pinned to CPU 0 so that it never
preempts the gateway's worker (CPU 1). Kinds: "read" (GET /v1/addresses/ADDR over a range of addresses), "write"
(POST /v1/approvals then DELETE /v1/approvals/ADDR, alternating: each a durable, audited change). Collects each
request's latency and the statuses."""
import http.client
import json
import os
import ssl
import threading
import time


class ApiLoad(threading.Thread):
    def __init__(self, host, port, token, kind, seconds, conns=4, cafile=None):
        super().__init__(daemon=True)
        self.host, self.port, self.token, self.kind = host, port, token, kind
        self.seconds, self.conns, self.cafile = seconds, conns, cafile
        self.latencies, self.statuses, self.elapsed = [], {}, 0.0
        self.lock = threading.Lock()

    def connection(self):
        if self.cafile:
            ctx = ssl.create_default_context(cafile=self.cafile)
            return http.client.HTTPSConnection(self.host, self.port, context=ctx, timeout=30)
        return http.client.HTTPConnection(self.host, self.port, timeout=30)

    def worker(self, n, deadline):
        os.sched_setaffinity(0, {0})
        conn = self.connection()
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        lat, statuses, i = [], {}, 0
        while time.monotonic() < deadline:
            addr = f"198.51.100.{64 + (n * 16 + i // 2) % 128}"
            if self.kind == "read":
                method, path, body = "GET", f"/v1/addresses/{addr}", None
            elif i % 2 == 0:
                method, path, body = "POST", "/v1/approvals", json.dumps({"address": addr, "ticket": f"B-{i}"})
            else:
                method, path, body = "DELETE", f"/v1/approvals/{addr}", None
            t0 = time.monotonic()
            try:
                conn.request(method, path, body=body, headers=headers)
                rsp = conn.getresponse()
                rsp.read()
                status = rsp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = self.connection()
                status = 0
            lat.append(time.monotonic() - t0)
            statuses[status] = statuses.get(status, 0) + 1
            i += 1
        conn.close()
        with self.lock:
            self.latencies += lat
            for k, v in statuses.items():
                self.statuses[k] = self.statuses.get(k, 0) + v

    def run(self):
        start = time.monotonic()
        deadline = start + self.seconds
        threads = [threading.Thread(target=self.worker, args=(n, deadline), daemon=True) for n in range(self.conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.elapsed = time.monotonic() - start
