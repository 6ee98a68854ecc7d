#!/usr/bin/env python3
"""cdp.py — drives Debian's headless Chromium through the DevTools protocol (standard
library only: a minimal WebSocket client), for the page tests of `em-backend serve`.

  cdp.py URL OUTDIR STEP...
A STEP is "go:HASH" (load URL#HASH and wait until the page's view says it is ready),
"dom:NAME" (save the DOM as OUTDIR/NAME.html), "shot:NAME" (OUTDIR/NAME.png),
"wait:SELECTOR" (until it exists), "gone:SELECTOR" (until nothing matches it),
"eval:EXPR" (print its value as JSON).
"""
import base64, json, os, socket, struct, subprocess, sys, tempfile, time, urllib.request


class WS:
    def __init__(self, url):
        assert url.startswith("ws://")
        hostport, path = url[5:].split("/", 1)
        host, port = hostport.split(":")
        self.s = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.s.recv(1)
        assert b" 101 " in head.split(b"\r\n")[0], head
        self.buf = b""
        self.id = 0

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise EOFError("the browser closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, obj):
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                                bytes([0x80 | 127]) + struct.pack(">Q", n))
        self.s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        msg = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            msg += payload
            if b0 & 0x80:
                return json.loads(msg)

    def call(self, method, **params):
        self.id += 1
        self.send({"id": self.id, "method": method, "params": params})
        while True:
            m = self.recv()
            if m.get("id") == self.id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})


def evaluate(ws, expr):
    r = ws.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
    if "exceptionDetails" in r:
        raise RuntimeError(f"{expr}: {r['exceptionDetails']}")
    return r["result"].get("value")


def wait_for(ws, expr, what, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if evaluate(ws, expr):
            return
        time.sleep(0.1)
    raise TimeoutError(f"waited {timeout} s for {what}")


def main():
    url, outdir, steps = sys.argv[1], sys.argv[2], sys.argv[3:]
    prof = tempfile.mkdtemp(prefix="em-chromium-")
    port_file = os.path.join(prof, "DevToolsActivePort")
    br = subprocess.Popen(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", "--remote-debugging-port=0",
                           f"--user-data-dir={prof}", "--window-size=1280,1000", "about:blank"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if os.path.exists(port_file) and open(port_file).read().count("\n") >= 1:
                break
            time.sleep(0.1)
        port = int(open(port_file).read().split("\n")[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
        page = next(t for t in targets if t["type"] == "page")
        ws = WS(page["webSocketDebuggerUrl"])
        ws.call("Page.enable")
        ws.call("Runtime.enable")
        for step in steps:
            kind, _, arg = step.partition(":")
            if kind == "go":
                evaluate(ws, "document.getElementById('view') && "
                             "delete document.getElementById('view').dataset.ready")
                ws.call("Page.navigate", url=f"{url}#{arg}")
                wait_for(ws, "!!(document.getElementById('view') && "
                             "document.getElementById('view').dataset.ready)", f"#{arg}")
            elif kind == "wait":
                wait_for(ws, f"!!document.querySelector({json.dumps(arg)})", arg)
            elif kind == "gone":
                wait_for(ws, f"!document.querySelector({json.dumps(arg)})", f"no {arg}")
            elif kind == "dom":
                html = evaluate(ws, "document.documentElement.outerHTML")
                open(os.path.join(outdir, arg + ".html"), "w").write(html)
            elif kind == "shot":
                r = ws.call("Page.captureScreenshot", format="png")
                open(os.path.join(outdir, arg + ".png"), "wb").write(base64.b64decode(r["data"]))
            elif kind == "eval":
                print(json.dumps(evaluate(ws, arg)))
            else:
                sys.exit(f"cdp.py: {step}: unknown step")
    finally:
        br.terminate()
        try:
            br.wait(10)
        except subprocess.TimeoutExpired:
            br.kill()
        subprocess.run(["rm", "-rf", prof])


if __name__ == "__main__":
    main()
