"""A platform's webhook endpoint on loopback for the webhook tests: every
delivery is verified with the `standardwebhooks` library from PyPI (not
Reclaim's code), logged as a JSON line, and answered as the script says.

    webhook_receiver.py PORT SECRET LOG [ANSWERS]

ANSWERS is a comma-separated list taken one per request: a status code,
or `sleep` (answer 200 after three seconds, past the sender's timeout);
200 once the list runs out. A delivery that fails verification gets 400.
"""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

port, secret, log_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
answers = [a for a in (sys.argv[4] if len(sys.argv) > 4 else "").split(",") if a]
hook = Webhook(secret)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            hook.verify(body, headers)
            verified = True
        except Exception as e:  # the library's WebhookVerificationError
            verified = str(e) or type(e).__name__
        answer = answers.pop(0) if answers else "200"
        if verified is not True:
            answer = "400"
        record = {
            "id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"),
            "signature": headers.get("webhook-signature"),
            "path": self.path,
            "body": body.decode(),
            "verified": verified,
            "answer": answer,
        }
        with open(log_path, "a") as log:
            log.write(json.dumps(record) + "\n")
        if answer == "sleep":
            time.sleep(3)
            answer = "200"
        self.send_response(int(answer))
        if answer.startswith("3"):
            self.send_header("location", "/redirected")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
