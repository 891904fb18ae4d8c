#!/usr/bin/env python3
"""An HTTPS webhook receiver for tests: what a chat or ticketing system would be to playbooks.

usage: webhook_receiver.py CERT KEY PORT_FILE OUT_FILE
Listens on 127.0.0.1 (a free port, written to PORT_FILE once listening), TLS with CERT/KEY, and
appends one JSON line per POST to OUT_FILE: {"path": ..., "body": <the JSON body>}. Answers 200,
or 503 for paths ending in /down (a webhook that is failing). Paths under /soc are answered the
way many chat webhooks answer: HTTP/1.0, a body with no Content-Length, ended by closing the
connection without a TLS close_notify.
"""
import http.server
import json
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with open(sys.argv[4], "a", encoding="utf-8") as out:
            out.write(json.dumps({"path": self.path, "body": body}) + "\n")
        status = 503 if self.path.endswith("/down") else 200
        if self.path.startswith("/soc"):
            self.close_connection = True
            self.wfile.write(b"HTTP/1.0 %d OK\r\nContent-Type: text/plain\r\n\r\nok" % status)
            self.wfile.flush()
            # Close TCP under TLS without unwrap(): no close_notify, as such servers do.
            self.connection.close()
            return
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with open(sys.argv[3] + ".tmp", "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(sys.argv[3] + ".tmp", sys.argv[3])
    server.serve_forever()


if __name__ == "__main__":
    main()
